#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster listening on a unix socket only, kept under DIR.
#
#   pg.sh start DIR      create (if absent) and start; prints PGHOST=... and PGPORT=... lines
#                        on stdout (eval-able: eval "$(pg.sh start DIR)"); chatter goes to stderr
#   pg.sh stop DIR       fast shutdown; fine if it is not running
#   pg.sh dsn DIR DB     prints a libpq conninfo for database DB
#
# Layout: DIR/data (data directory), DIR/socket (socket dir), DIR/port, DIR/postgres.log.
# As root, initdb and pg_ctl run as the postgres user (initdb refuses root); that user must be
# able to reach DIR, so keep DIR under /tmp or make its parents world-searchable.
# fsync stays on here (unlike the PgCluster used by tests).
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
log() { echo "pg.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a command as postgres when root; from / so that the cwd need not be reachable.
as_pg() {
  if is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# A libpq conninfo value, quoted when needed.
conninfo_value() {
  local v="$1"
  case "$v" in
    '' | *[[:space:]\'\\]*)
      v="${v//\\/\\\\}"
      v="${v//\'/\\\'}"
      printf "'%s'" "$v"
      ;;
    *) printf '%s' "$v" ;;
  esac
}

abs_existing_dir() {
  [ -d "$1" ] || die "no such directory: $1"
  (cd "$1" && pwd -P)
}

running() { # DIR
  [ -f "$1/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" status -D "$1/data" >/dev/null 2>&1
}

cmd_start() {
  [ -x "$PGBIN/initdb" ] || die "$PGBIN/initdb not found; install postgresql-15 (tests/scripts/deps.sh)"
  mkdir -p "$1"
  local dir
  dir="$(abs_existing_dir "$1")"
  local data="$dir/data" sock="$dir/socket" logf="$dir/postgres.log"

  # Unix socket paths are limited to 107 bytes: SOCKDIR/.s.PGSQL.NNNNN
  [ $((${#sock} + 18)) -le 107 ] || die "path too long for a unix socket: $sock (use a shorter DIR)"

  mkdir -p "$data" "$sock"
  touch "$logf"
  chmod 0700 "$data"
  chmod 0755 "$sock"
  if is_root; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user"
    chown postgres:postgres "$data" "$sock" "$logf"
  fi
  as_pg test -w "$data" -a -w "$sock" ||
    die "the postgres user cannot reach $dir; use a DIR under /tmp or chmod o+x its parents"

  local port
  if [ -f "$dir/port" ]; then
    port="$(cat "$dir/port")"
  else
    port=$(((RANDOM * 32768 + RANDOM) % 40001 + 20000))
    echo "$port" >"$dir/port"
  fi

  if [ ! -f "$data/PG_VERSION" ]; then
    log "initdb $data"
    as_pg "$PGBIN/initdb" -D "$data" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 \
      --no-instructions >&2
    {
      echo ""
      echo "# pg.sh"
      echo "port = $port"
      echo "unix_socket_directories = '$sock'"
      echo "listen_addresses = ''"
    } >>"$data/postgresql.conf"
  fi

  if running "$dir"; then
    log "already running"
  else
    log "starting (log: $logf)"
    if ! as_pg "$PGBIN/pg_ctl" start -w -t 60 -D "$data" -l "$logf" >&2; then
      tail -n 30 "$logf" >&2 || true
      die "server did not start"
    fi
  fi
  printf 'PGHOST=%q\n' "$sock"
  printf 'PGPORT=%q\n' "$port"
}

cmd_stop() {
  local dir
  dir="$(abs_existing_dir "$1")"
  if running "$dir"; then
    as_pg "$PGBIN/pg_ctl" stop -m fast -w -t 60 -D "$dir/data" >&2
  else
    log "not running"
  fi
}

cmd_dsn() {
  local dir
  dir="$(abs_existing_dir "$1")"
  [ -f "$dir/port" ] || die "$dir has no cluster (run: pg.sh start $1)"
  printf 'host=%s port=%s dbname=%s user=postgres\n' \
    "$(conninfo_value "$dir/socket")" "$(cat "$dir/port")" "$(conninfo_value "$2")"
}

[ $# -ge 2 ] || usage
case "$1" in
  start) [ $# -eq 2 ] || usage; cmd_start "$2" ;;
  stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
  dsn) [ $# -eq 3 ] || usage; cmd_dsn "$2" "$3" ;;
  *) usage ;;
esac
