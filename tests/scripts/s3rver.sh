#!/usr/bin/env bash
# Installs s3rver (a filesystem-backed implementation of the S3 REST API, from npm) for the
# tests and the demo, at the version tests/s3rver/package-lock.json pins, into
# BUILD/s3rver/node_modules (BUILD: LETHE_BUILD_DIR, default build/). Idempotent: nothing is
# fetched when that lockfile's install is already there. Needs node and npm (deps.sh).
# Prints the path of s3rver's entry script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${LETHE_BUILD_DIR:-$ROOT/build}"
DEST="$BUILD/s3rver"
ENTRY="$DEST/node_modules/s3rver/bin/s3rver.js"

log() { echo "s3rver.sh: $*" >&2; }

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is not installed (tests/scripts/deps.sh installs it)"; exit 1; }
done
mkdir -p "$DEST"
if [ -f "$ENTRY" ] && cmp -s "$ROOT/tests/s3rver/package-lock.json" "$DEST/package-lock.json"; then
  echo "$ENTRY"
  exit 0
fi
cp "$ROOT/tests/s3rver/package.json" "$ROOT/tests/s3rver/package-lock.json" "$DEST/"
log "+ npm ci (s3rver, as pinned in tests/s3rver/package-lock.json) in $DEST"
(cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error >&2)
[ -f "$ENTRY" ] || { log "npm ci finished but $ENTRY is missing"; exit 1; }
echo "$ENTRY"
