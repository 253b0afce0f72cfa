#!/usr/bin/env bash
# Installs the pinned ONNX Runtime shared library into the repo's git-ignored
# cache (.cache/onnxruntime/<version>/libonnxruntime.so.1) from the npm package
# onnxruntime-node, which ships it for linux-x64. Idempotent; verifies sha256.
set -euo pipefail
ORT_VERSION=1.30.0
TGZ_SHA256=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75
LIB_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23

root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.cache/onnxruntime/$ORT_VERSION"
lib="$dest/libonnxruntime.so.1"

if [ -f "$lib" ] && echo "$LIB_SHA256  $lib" | sha256sum -c --status; then
  echo "onnxruntime $ORT_VERSION: $lib"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-onnxruntime: only linux-x64 is packaged here; set IMGVEC_ORT_LIB to your libonnxruntime.so" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "install-onnxruntime: npm is required (apt-get install npm)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
tgz="$work/onnxruntime-node-$ORT_VERSION.tgz"
echo "$TGZ_SHA256  $tgz" | sha256sum -c --status || { echo "install-onnxruntime: sha256 mismatch for $tgz" >&2; exit 1; }
tar -xzf "$tgz" -C "$work" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
echo "$LIB_SHA256  $work/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c --status \
  || { echo "install-onnxruntime: sha256 mismatch for libonnxruntime.so.1" >&2; exit 1; }
mkdir -p "$dest"
install -m 0644 "$work/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib.tmp"
mv "$lib.tmp" "$lib"
echo "onnxruntime $ORT_VERSION installed: $lib"
