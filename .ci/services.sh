#!/usr/bin/env bash
# Starts (start) or stops (stop) every server the tests need, idempotently.
# Each server's script under .ci/services/ prints the env vars that point
# tests at it; `start` writes them to .cache/services.env, which `make test`
# sources. Servers that this script started are the ones `stop` stops.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/.cache"
envfile="$root/.cache/services.env"
cmd=${1:-start}
shopt -s nullglob
scripts=("$root"/.ci/services/*.sh)
case "$cmd" in
  start)
    : > "$envfile.tmp"
    for s in "${scripts[@]}"; do bash "$s" start >> "$envfile.tmp"; done
    mv "$envfile.tmp" "$envfile"
    ;;
  stop)
    for s in "${scripts[@]}"; do bash "$s" stop || true; done
    rm -f "$envfile"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
