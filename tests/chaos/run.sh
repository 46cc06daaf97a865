#!/usr/bin/env bash
# The chaos run (tests/chaos/README.md), long form:
#
#   tests/chaos/run.sh [--seconds N] [--seed S] [--rate OPS] [--fault-every SECONDS] [--report FILE]
#                      [--logs DIR]
#
# Defaults: 600 s of load at 20 operations a second, a fault every 4 s on average, a seed drawn
# and printed. Needs a build (tests/scripts/build.sh, or LETHE_BUILD_DIR) and PostgreSQL 15
# (tests/scripts/deps.sh). Exit status 0 when every invariant held; the report (Markdown) is
# printed at the end and written to --report when given; --logs DIR keeps lethed's and the
# agents' logs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${LETHE_BUILD_DIR:-$root/build}"
seconds=600 seed="" rate=20 every=4 report="" logs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --fault-every) every="$2"; shift 2 ;;
    --report) report="$2"; shift 2 ;;
    --logs) logs="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
bin="$build/tests/chaos_test"
for b in "$bin" "$build/controlplane/lethed" "$build/agents/lethe-agent" "$build/cli/lethectl"; do
  [ -x "$b" ] || { echo "run.sh: $b is missing: build first (tests/scripts/build.sh)" >&2; exit 2; }
done
[ -n "$seed" ] || seed=$(( (RANDOM << 15 | RANDOM) ))
# The drain after the load may take up to LETHE_CHAOS_DRAIN_SECONDS (lethed re-publishes an
# unanswered command after 15 s, 30 s, 60 s, ... at most 10 min apart); the whole run's waits
# get a budget to match.
drain="${LETHE_CHAOS_DRAIN_SECONDS:-900}"
export LETHE_CHAOS_SECONDS="$seconds" LETHE_CHAOS_SEED="$seed" LETHE_CHAOS_RATE="$rate" \
  LETHE_CHAOS_FAULT_EVERY="$every" LETHE_CHAOS_REPORT="$report" LETHE_CHAOS_DRAIN_SECONDS="$drain" \
  LETHE_CHAOS_LOGS="$logs" \
  LETHE_TEST_BUDGET_SECONDS=$(( seconds + drain + 900 ))
echo "chaos: seed $seed, ${seconds}s of load at ${rate}/s, a fault every ${every}s on average"
exec "$bin" --gtest_filter='Chaos.*'
