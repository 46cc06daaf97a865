#!/usr/bin/env bash
# Runs the README's "Running it yourself" lines exactly as written (the code block between
# <!-- walkthrough:begin --> and <!-- walkthrough:end -->), at the repository root, with B set
# to the build directory and W to a fresh directory, and checks that they end with the
# erasure COMPLETED and the ledger verified.
#   walkthrough.sh BUILD_DIR
set -euo pipefail
BUILD="$(cd "${1:?usage: walkthrough.sh BUILD_DIR}" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d /tmp/lethe-walkthrough-test.XXXXXX)"
chmod 755 "$WORK"  # pg.sh runs PostgreSQL as postgres when root: it must reach $W/pg
trap 'kill $(jobs -p) 2>/dev/null || true; "$ROOT/tests/scripts/pg.sh" stop "$WORK/w/pg" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

script="$WORK/lines.sh"
sed -n '/^<!-- walkthrough:begin -->$/,/^<!-- walkthrough:end -->$/p' "$ROOT/README.md" |
  sed '1,2d;$d' | sed '$d' >"$script"
if ! head -n 1 "$script" | grep -q '^B=' || [ "$(wc -l <"$script")" -lt 10 ]; then
  echo "walkthrough.sh: no walkthrough block found in README.md" >&2
  exit 1
fi
echo "---- the README's lines ($(wc -l <"$script") of them), run with B=$BUILD W=$WORK/w"
cd "$ROOT"
out="$WORK/out.txt"
set +e
B="$BUILD" W="$WORK/w" timeout 240 bash -e "$script" >"$out" 2>&1
rc=$?
set -e
cat "$out"
fail() {
  echo "walkthrough.sh: FAILED: $*" >&2
  for f in "$WORK"/w/*.log; do [ -f "$f" ] && { echo "---- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}
[ "$rc" -eq 0 ] || fail "the lines exited with $rc"
grep -q "COMPLETED" "$out" || fail "the erasure did not complete"
grep -q "^ledger verify: OK" "$out" || fail "the ledger did not verify"
echo "walkthrough.sh: OK"
