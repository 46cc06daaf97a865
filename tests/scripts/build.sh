#!/usr/bin/env bash
# Installs the dependencies (tests/scripts/deps.sh) and the tests' S3 server
# (tests/scripts/s3rver.sh), configures build/ in the repo root (Ninja, RelWithDebInfo) and
# builds everything.
#   LETHE_JOBS=N        parallel build jobs (default 2)
#   LETHE_BUILD_DIR=D   build directory (default build/ in the repo root)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${LETHE_BUILD_DIR:-$ROOT/build}"
JOBS="${LETHE_JOBS:-2}"

log() { echo "build.sh: $*" >&2; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

case "$JOBS" in
  '' | *[!0-9]* | 0)
    log "LETHE_JOBS must be a positive integer, got '$JOBS'"
    exit 2
    ;;
esac

"$ROOT/tests/scripts/deps.sh"
LETHE_BUILD_DIR="$BUILD" "$ROOT/tests/scripts/s3rver.sh" >/dev/null

# cmake refuses to switch generators in an existing build dir; say so plainly.
if [ -f "$BUILD/CMakeCache.txt" ] &&
  ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD/CMakeCache.txt"; then
  log "$BUILD was configured with another generator; remove it (rm -rf '$BUILD') and rerun"
  exit 1
fi

start=$(now_ms)
log "+ cmake -S $ROOT -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
log "+ ninja -C $BUILD -j$JOBS"
ninja -C "$BUILD" -j"$JOBS"
elapsed=$(($(now_ms) - start))
printf 'build.sh: build wall time %d.%03d s (configure + build, -j%s)\n' \
  $((elapsed / 1000)) $((elapsed % 1000)) "$JOBS"
