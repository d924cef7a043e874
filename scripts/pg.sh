# shellcheck shell=bash
# Sourced by the scripts here: makes sure a PostgreSQL server answers and exports
# DATABASE_URL for it.
#   1. DATABASE_URL when set;
#   2. else the local server on 127.0.0.1:5432 (user postgres, trust auth);
#   3. else, when PostgreSQL's binaries are installed, a private cluster under var/pg;
#   4. else an explanation of how to get one.

pg_answers() { # host port
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$1" -p "$2" -t 2
  else
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
  fi
}

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /opt/homebrew/bin /usr/local/bin /usr/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
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
  local root bin port=54329
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if bin="$(pg_bin_dir)"; then
    local data="$root/var/pg"
    if [ ! -f "$data/PG_VERSION" ]; then
      echo "No PostgreSQL on 127.0.0.1:5432: creating a private cluster in var/pg" >&2
      mkdir -p "$data"
      if [ "$(id -u)" = 0 ]; then
        echo "error: initdb refuses to run as root. Start the system server instead:" >&2
        echo "  pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
        echo "or run PostgreSQL in Docker: docker compose up -d db" >&2
        return 1
      fi
      "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
    fi
    if ! pg_answers 127.0.0.1 "$port"; then
      "$bin/pg_ctl" -D "$data" -l "$root/var/pg.log" -w \
        -o "-p $port -k $data -c listen_addresses=127.0.0.1" start >/dev/null
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$dbname"
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
