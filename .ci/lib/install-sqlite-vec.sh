#!/usr/bin/env bash
# Installs sqlite-vec's loadable extension (vec0.so, the same v0.1.6 the Go
# bindings compile in) from npm into .cache/sqlite-vec, so the README's
# queries can be run in the sqlite3 shell with `.load`. Idempotent.
set -euo pipefail
VERSION=0.1.6
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.cache/sqlite-vec"
so="$dest/node_modules/sqlite-vec-linux-x64/vec0.so"
if [ -f "$so" ] && grep -q "\"version\": \"$VERSION\"" "$dest/node_modules/sqlite-vec-linux-x64/package.json" 2>/dev/null; then
  exit 0
fi
mkdir -p "$dest"
npm install --silent --no-audit --no-fund --prefix "$dest" "sqlite-vec-linux-x64@$VERSION" >/dev/null
[ -f "$so" ] || { echo "install-sqlite-vec: $so missing after npm install" >&2; exit 1; }
echo "sqlite-vec $VERSION: $so"
