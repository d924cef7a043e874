# shellcheck shell=bash
# Sourced by bench/run and bench/chaos: a private PostgreSQL cluster on its own port, so that
# load and faults never reach a shared server. As root (initdb refuses root) the cluster
# belongs to the postgres OS user. Sets PRIVATE_PG_URL; `private_pg_stop`/`private_pg_start`
# restart it; `private_pg_cleanup` removes it.
#   private_pg_init PORT [extra server options]

private_pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    bin=$(dirname "$(command -v initdb || echo /nonexistent/initdb)")
  fi
  [ -x "$bin/initdb" ] && echo "$bin"
}

_as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

private_pg_init() { # port [server options]
  PRIVATE_PG_BIN=$(private_pg_bin) || { echo "PostgreSQL's server binaries (initdb, pg_ctl) are needed" >&2; return 1; }
  PRIVATE_PG_PORT=$1
  PRIVATE_PG_OPTS=${2:-}
  PRIVATE_PG_DIR=$(mktemp -d /tmp/cart-private-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$PRIVATE_PG_DIR"
  _as_pg "'$PRIVATE_PG_BIN/initdb' -D '$PRIVATE_PG_DIR/data' -U postgres --auth=trust" >/dev/null 2>&1
  private_pg_start
  PRIVATE_PG_URL="postgres://postgres@127.0.0.1:$PRIVATE_PG_PORT"
}

private_pg_start() {
  _as_pg "'$PRIVATE_PG_BIN/pg_ctl' -D '$PRIVATE_PG_DIR/data' -l '$PRIVATE_PG_DIR/log' -w -o \"-p $PRIVATE_PG_PORT -k $PRIVATE_PG_DIR -c listen_addresses=127.0.0.1 $PRIVATE_PG_OPTS\" start" >/dev/null
}

private_pg_stop() { # [mode]
  _as_pg "'$PRIVATE_PG_BIN/pg_ctl' -D '$PRIVATE_PG_DIR/data' -w -m ${1:-fast} stop" >/dev/null
}

private_pg_cleanup() {
  [ -n "${PRIVATE_PG_DIR:-}" ] || return 0
  private_pg_stop immediate 2>/dev/null || true
  rm -rf "$PRIVATE_PG_DIR"
}
