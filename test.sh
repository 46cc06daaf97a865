#!/usr/bin/env bash
# Runs every test: installs dependencies, builds build/, runs ctest. Exits with ctest's code
# and ends with a plain "N passed, N failed" line.
#   LETHE_JOBS=N        parallel build jobs (default 2)
#   LETHE_TEST_JOBS=N   parallel ctest jobs (default 2)
# Integration tests start their own throwaway PostgreSQL clusters; nothing needs starting here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

TEST_JOBS="${LETHE_TEST_JOBS:-2}"
case "$TEST_JOBS" in
  '' | *[!0-9]* | 0)
    echo "test.sh: LETHE_TEST_JOBS must be a positive integer, got '$TEST_JOBS'" >&2
    exit 2
    ;;
esac

if ! tests/scripts/build.sh; then
  echo "test.sh: build failed; no tests ran" >&2
  exit 1
fi

ctest_log="$(mktemp)"
trap 'rm -f "$ctest_log"' EXIT

# --no-tests=error: a build that registers no tests is a failure, not a green run.
set +e
ctest --test-dir build --output-on-failure --no-tests=error -j "$TEST_JOBS" 2>&1 |
  tee "$ctest_log"
rc=${PIPESTATUS[0]}
set -e

# ctest: "94% tests passed, 1 tests failed out of 16". A GTEST_SKIP counts as passed there;
# count "(Skipped)" entries of "The following tests did not run:" as not passed.
summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$ctest_log" |
  tail -n 1 || true)"
skipped="$(grep -cE '^[[:space:]]*[0-9]+ - .* \(Skipped\)$' "$ctest_log" || true)"
failed=0
passed=0
if [ -n "$summary" ]; then
  failed="$(sed -E 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")"
  total="$(sed -E 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")"
  passed=$((total - failed - skipped))
else
  echo "test.sh: ctest printed no summary (exit code $rc)" >&2
fi
if [ "$skipped" -gt 0 ]; then
  echo "$skipped skipped (not counted as passed)"
fi
echo "$passed passed, $failed failed"
exit "$rc"
