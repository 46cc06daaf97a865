#!/usr/bin/env bash
# Runs ctest with the given arguments, then prints "N passed, N failed" and exits non-zero
# unless every test ran and passed. ctest counts a skipped test (a GTEST_SKIP, or a test whose
# suite set-up failed, which googletest reports as skipped) as passed and exits 0; here any
# test in ctest's "did not run" list (Skipped, Disabled, Not Run) is a failure.
# Used by test.sh, and by tests/scripts/no_silent_skips.sh to prove it.
set -uo pipefail

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# --no-tests=error: a selection that registers no tests is a failure, not a green run.
ctest --output-on-failure --no-tests=error "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)"
# Entries of "The following tests did not run:", e.g. "  12 - a.B.c (Skipped)".
did_not_run="$(sed -n '/^The following tests did not run:/,/^$/p' "$log" |
  grep -cE '^[[:space:]]*[0-9]+ - .* \((Skipped|Disabled|Not Run)\)$')"
failed=0
passed=0
if [ -n "$summary" ]; then
  failed="$(sed -E 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")"
  total="$(sed -E 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")"
  passed=$((total - failed - did_not_run))
else
  echo "ctest.sh: ctest printed no summary (exit code $rc)" >&2
  [ "$rc" -eq 0 ] && rc=1
fi
if [ "$did_not_run" -gt 0 ]; then
  echo "$did_not_run did not run (skipped or disabled): counted as failed"
  failed=$((failed + did_not_run))
  [ "$rc" -eq 0 ] && rc=1
fi
echo "$passed passed, $failed failed"
exit "$rc"
