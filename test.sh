#!/usr/bin/env bash
# Runs every test: installs dependencies, builds build/, runs ctest. Ends with a plain
# "N passed, N failed" line, and exits non-zero unless every test ran and passed (a skipped
# test, e.g. of a suite whose set-up failed, counts as failed: tests/scripts/ctest.sh).
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

# Every test must run and pass: a skipped one counts as failed (tests/scripts/ctest.sh).
exec tests/scripts/ctest.sh --test-dir build -j "$TEST_JOBS"
