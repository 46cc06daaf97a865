#!/usr/bin/env bash
# Installs every Debian 12 package Lethe needs to build and test. Idempotent and
# non-interactive: when everything is already installed it does not touch apt at all.
# Runs as root (CI) or, if not root, through sudo.
set -euo pipefail

PACKAGES=(
  g++ make cmake ninja-build pkgconf lld
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libabsl-dev
  librdkafka-dev kcat libpqxx-dev postgresql-15 libssl-dev openssl libcurl4-openssl-dev libexpat1-dev
  libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libsodium-dev zlib1g-dev
  ca-certificates git curl
  python3-protobuf python3-cryptography python3-yaml
)

# The tests' S3 server (s3rver, tests/scripts/s3rver.sh) runs on Node.js: Debian's, unless
# the machine already has a node and npm of its own.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

log() { echo "deps.sh: $*" >&2; }

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    installed "$p" || echo "$p"
  done
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  log "this script needs a Debian-based system (dpkg-query and apt-get)"
  exit 1
fi

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
  log "all ${#PACKAGES[@]} packages already installed; skipping apt"
  exit 0
fi
log "missing ${#missing[@]} of ${#PACKAGES[@]} packages: ${missing[*]}"

if [ "$(id -u)" -eq 0 ]; then
  AS_ROOT=(env)
elif command -v sudo >/dev/null 2>&1; then
  AS_ROOT=(sudo env)
  log "not root: using sudo"
else
  log "not root and sudo is not installed; run this script as root"
  exit 1
fi

APT_ENV=(DEBIAN_FRONTEND=noninteractive)
APT_OPTS=(-q -y -o DPkg::Lock::Timeout=300
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

start=$(date +%s)
log "+ apt-get update"
"${AS_ROOT[@]}" "${APT_ENV[@]}" apt-get "${APT_OPTS[@]}" update
log "+ apt-get install --no-install-recommends ${missing[*]}"
"${AS_ROOT[@]}" "${APT_ENV[@]}" apt-get "${APT_OPTS[@]}" install --no-install-recommends \
  "${missing[@]}"

mapfile -t still_missing < <(missing_packages)
if [ "${#still_missing[@]}" -ne 0 ]; then
  log "still not installed after apt-get: ${still_missing[*]}"
  exit 1
fi
log "installed ${#missing[@]} packages in $(($(date +%s) - start)) s"
