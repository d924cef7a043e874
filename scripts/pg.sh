# shellcheck shell=bash
# PostgreSQL for the scripts here, bench/run and the fault tests (sourced by them).
#
#   ensure_postgres DBNAME   makes sure a server answers and exports DATABASE_URL for it:
#     1. DATABASE_URL when set;
#     2. else the local server on 127.0.0.1:5432 (user postgres, trust auth);
#     3. else, when PostgreSQL's binaries are installed, a private cluster kept in var/pg;
#     4. else an explanation of how to get one.
#
#   private_pg_init PORT [DATA_DIR] [SERVER_OPTIONS]
#     a private cluster on its own port, so that load and faults never reach a server others
#     use: initialised in DATA_DIR unless it holds one already (in a temporary directory when
#     DATA_DIR is empty), started unless it answers, and named by PRIVATE_PG_URL. initdb refuses
#     root: as root the cluster belongs to the postgres OS user.
#   private_pg_stop [MODE], private_pg_start   stop and start it again (the fault tests do)
#   private_pg_cleanup                         stops and removes a temporary cluster; one kept
#                                              in a DATA_DIR keeps running

pg_answers() { # host port
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$1" -p "$2" -t 2
  else
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
  fi
}

# The directory of initdb and pg_ctl, the newest version first.
pg_bin_dir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV) \
    /usr/local/pgsql/bin /opt/homebrew/bin /usr/local/bin /usr/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

_as_pg_owner() { # shell command
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$1"; else bash -c "$1"; fi
}

private_pg_init() { # port [data dir] [server options]
  PRIVATE_PG_BIN=$(pg_bin_dir) || {
    echo "error: PostgreSQL's server binaries (initdb, pg_ctl) are not installed" >&2
    return 1
  }
  PRIVATE_PG_PORT=$1
  PRIVATE_PG_DATA=${2:-}
  PRIVATE_PG_OPTS=${3:-}
  PRIVATE_PG_TEMP=""
  if [ -z "$PRIVATE_PG_DATA" ]; then
    PRIVATE_PG_TEMP=$(mktemp -d /tmp/cart-private-pg.XXXXXX)
    PRIVATE_PG_DATA=$PRIVATE_PG_TEMP/data
  fi
  PRIVATE_PG_URL="postgres://postgres@127.0.0.1:$PRIVATE_PG_PORT"
  if [ ! -f "$PRIVATE_PG_DATA/PG_VERSION" ]; then
    mkdir -p "$PRIVATE_PG_DATA"
    if [ "$(id -u)" = 0 ]; then
      chown postgres "$PRIVATE_PG_DATA" ${PRIVATE_PG_TEMP:+"$PRIVATE_PG_TEMP"}
    fi
    if ! _as_pg_owner "'$PRIVATE_PG_BIN/initdb' -D '$PRIVATE_PG_DATA' -U postgres --auth=trust" >/dev/null 2>&1; then
      echo "error: initdb failed in $PRIVATE_PG_DATA (as root it runs as the postgres user, which must be able to reach that directory)" >&2
      return 1
    fi
  fi
  pg_answers 127.0.0.1 "$PRIVATE_PG_PORT" || private_pg_start
}

private_pg_start() {
  _as_pg_owner "'$PRIVATE_PG_BIN/pg_ctl' -D '$PRIVATE_PG_DATA' -l '$PRIVATE_PG_DATA/server.log' -w -o \"-p $PRIVATE_PG_PORT -k $PRIVATE_PG_DATA -c listen_addresses=127.0.0.1 $PRIVATE_PG_OPTS\" start" >/dev/null
}

private_pg_stop() { # [mode]
  _as_pg_owner "'$PRIVATE_PG_BIN/pg_ctl' -D '$PRIVATE_PG_DATA' -w -m ${1:-fast} stop" >/dev/null
}

private_pg_cleanup() {
  [ -n "${PRIVATE_PG_TEMP:-}" ] || return 0
  private_pg_stop immediate 2>/dev/null || true
  rm -rf "$PRIVATE_PG_TEMP"
  PRIVATE_PG_TEMP=""
}

ensure_postgres() { # default database name
  local dbname="$1"
  if [ -n "${DATABASE_URL:-}" ]; then
    return 0
  fi
  if pg_answers 127.0.0.1 5432; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$dbname"
    return 0
  fi
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if pg_bin_dir >/dev/null; then
    [ -f "$root/var/pg/PG_VERSION" ] ||
      echo "No PostgreSQL on 127.0.0.1:5432: creating a private cluster in var/pg" >&2
    private_pg_init 54329 "$root/var/pg" || return 1
    export DATABASE_URL="$PRIVATE_PG_URL/$dbname"
    return 0
  fi
  cat >&2 <<'MSG'
error: no PostgreSQL server answers on 127.0.0.1:5432 and PostgreSQL is not installed here.
Get one of these:
  - Docker:  docker compose up -d db        (PostgreSQL 17 on 127.0.0.1:5432)
  - Debian/Ubuntu:  sudo apt-get install postgresql && sudo pg_ctlcluster $(ls /etc/postgresql) main start
  - or point DATABASE_URL at any PostgreSQL 15+ server you can create databases on.
MSG
  return 1
}
