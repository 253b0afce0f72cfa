#!/usr/bin/env bash
# Installs Milvus 2.3.5 standalone for the tests, without Docker: the PyPI
# wheel `milvus` (embedded Milvus) ships the real server binary and its
# libraries, LZMA-compressed. The wheel is pinned by version and sha256 and
# installed with --no-deps into .cache/milvus-venv; its Python layer is used
# only to render the server's config (.ci/services/milvus.sh). The binaries
# are unpacked once into .cache/milvus/bin. Idempotent. Prints the venv's
# python to stdout.
set -euo pipefail
VERSION=2.3.5
SHA256=69515a0630ce29fd10e101fa442afea8ca1387b93a456cd9bd41fdf3deb93d04
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.cache/milvus-venv"
bin="$root/.cache/milvus/bin"
stamp="$venv/.milvus-$VERSION"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv" "$bin"
  python3 -m venv "$venv"
  req=$(mktemp)
  trap 'rm -f "$req"' EXIT
  echo "milvus==$VERSION --hash=sha256:$SHA256" > "$req"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
    --only-binary :all: -r "$req" >&2
  touch "$stamp"
fi
if [ ! -x "$bin/milvus" ]; then
  mkdir -p "$bin"
  # The wheel's own unpacker (milvus._initialize_data_files) writes BASE/bin.
  "$venv/bin/python" -c 'import sys, milvus; milvus._initialize_data_files(sys.argv[1])' "$(dirname "$bin")" >&2
  echo "milvus $VERSION (PyPI wheel milvus) unpacked into $bin" >&2
fi
echo "$venv/bin/python"
