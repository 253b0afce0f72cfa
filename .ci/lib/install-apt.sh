#!/usr/bin/env bash
# Installs the Debian packages the build needs (libturbojpeg and libjpeg for the JPEG fast
# path, jpegtran to make progressive copies of test JPEGs, libwebp for exact WebP, sqlite3 and its headers for sqlite-vec, chromium for the headless
# tests of the `imgvec map` page). Idempotent; needs root only
# when something is missing.
set -euo pipefail
pkgs=(libturbojpeg0-dev libjpeg62-turbo-dev libjpeg-turbo-progs libwebp-dev libsqlite3-dev sqlite3 chromium)
missing=()
# npm (for the ONNX Runtime and sqlite-vec packages) may come with Node.js
# rather than from Debian: only install Debian's when there is none.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
