#!/usr/bin/env bash
# Proves that a broken fixture fails the run instead of passing it by (issue: a failed suite
# set-up made googletest report its tests as skipped, ctest counted them as passed, and
# test.sh printed "N passed, 0 failed" and exited 0). Usage: no_silent_skips.sh BUILD_DIR
#  1. input_test, with PostgreSQL made to fail to start (LETHE_TEST_BREAK_POSTGRES=1), run
#     through tests/scripts/ctest.sh as test.sh runs everything: must exit non-zero, with
#     no test passed.
#  2. a test that googletest-style reports "[  SKIPPED ]": must exit non-zero too.
# Each runs in a scratch ctest directory, so that it can run inside the suite itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:?usage: no_silent_skips.sh BUILD_DIR}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

expect_failure() {  # name, dir, env...
  local name="$1" dir="$2"
  shift 2
  set +e
  out="$(cd "$dir" && env "$@" "$ROOT/tests/scripts/ctest.sh" --test-dir "$dir" 2>&1)"
  rc=$?
  set -e
  last="$(tail -n 1 <<<"$out")"
  if [ "$rc" -eq 0 ]; then
    echo "no_silent_skips: FAILED: $name: the run exited 0 ($last)" >&2
    echo "$out" | tail -n 20 >&2
    exit 1
  fi
  if ! grep -qE '^0 passed, [1-9][0-9]* failed$' <<<"$last"; then
    echo "no_silent_skips: FAILED: $name: expected no test passed, got '$last'" >&2
    exit 1
  fi
  echo "no_silent_skips: $name: exit $rc, '$last'"
}

mkdir -p "$work/fixture" "$work/skip"
printf 'include("%s/tests/input_test[1]_include.cmake")\n' "$BUILD" >"$work/fixture/CTestTestfile.cmake"
expect_failure "input_test with PostgreSQL broken" "$work/fixture" LETHE_TEST_BREAK_POSTGRES=1

cat >"$work/skip/CTestTestfile.cmake" <<'CMAKE'
add_test(reported_skipped /bin/sh -c "echo '[  SKIPPED ] a test that did not run'")
set_tests_properties(reported_skipped PROPERTIES SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
CMAKE
expect_failure "a test reported as skipped" "$work/skip"
echo "no_silent_skips: OK"
