#!/usr/bin/env bash
# Milvus Lite 3.2.2 for the integration tests (sinks/milvus, cmd/imgvec),
# from the pinned PyPI wheel `milvus-lite` (.ci/lib/install-milvus-lite.sh):
# `python -m milvus_lite server`, one Python process serving Milvus' gRPC
# API on loopback, beside Milvus 2.3.5 (.ci/services/milvus.sh).
#
#   start  installs if needed and starts the server unless a Milvus Lite
#          already answers on the port (it is then reused, and `stop` leaves
#          it alone), waits until it answers, and prints
#          IMGVEC_TEST_MILVUS_LITE_ADDR=127.0.0.1:PORT to stdout (all else
#          to stderr).
#   stop   stops the server only if this script started it (TERM, then KILL).
#
# IMGVEC_MILVUS_LITE_PORT (default 19650) is its only port.
# IMGVEC_MILVUS_LITE_DIR (default .cache/milvus-lite/PORT) holds its data
# (emptied at each start: test data is disposable) and log.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${IMGVEC_MILVUS_LITE_PORT:-19650}
dir=${IMGVEC_MILVUS_LITE_DIR:-$root/.cache/milvus-lite/$port}
pidfile="$dir/server.pid" # present while this script's server runs
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

# answers PYTHON SECONDS [PID]: whether a Milvus Lite answers GetVersion
# on the port within SECONDS (while process PID lives). One Python start:
# importing pymilvus takes seconds.
answers() {
  "$1" - "$port" "$2" "${3:-}" <<'PY' >&2
import os, sys, time, grpc
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc
port, wait, pid = sys.argv[1], float(sys.argv[2]), sys.argv[3]
stub = milvus_pb2_grpc.MilvusServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
deadline = time.monotonic() + wait
while True:
    try:
        v = stub.GetVersion(milvus_pb2.GetVersionRequest(), timeout=2).version
        if v.startswith("milvus_lite"):
            print(f"milvus-lite: {v} answers on 127.0.0.1:{port}")
            sys.exit(0)
        sys.exit(f"milvus-lite: 127.0.0.1:{port} answers as {v!r}, not Milvus Lite")
    except grpc.RpcError:
        if time.monotonic() > deadline:
            sys.exit(1)
        if pid:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                sys.exit(1)
        time.sleep(0.2)
PY
}

start() {
  local python t0 pid
  python=$("$root/.ci/lib/install-milvus-lite.sh")
  if listening; then
    answers "$python" 0 || { echo "milvus-lite: port $port is taken by something else" >&2; exit 1; }
    echo "milvus-lite: reusing the server already on 127.0.0.1:$port" >&2
    echo "IMGVEC_TEST_MILVUS_LITE_ADDR=127.0.0.1:$port"
    return
  fi
  rm -rf "$dir/data"
  mkdir -p "$dir"
  t0=$(date +%s%N)
  setsid nohup "$python" -m milvus_lite server --data-dir "$dir/data" --host 127.0.0.1 --port "$port" \
    >"$dir/server.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidfile"
  if answers "$python" 60 "$pid"; then
    echo "milvus-lite: started on 127.0.0.1:$port in $(( ($(date +%s%N) - t0) / 1000000 )) ms (pid $pid, data $dir/data)" >&2
    echo "IMGVEC_TEST_MILVUS_LITE_ADDR=127.0.0.1:$port"
    return
  fi
  echo "milvus-lite: failed to start on 127.0.0.1:$port; last log lines:" >&2
  tail -30 "$dir/server.log" >&2 || true
  stop
  exit 1
}

# stop stops the server this script started and waits for it.
stop() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && grep -q milvus_lite "/proc/$pid/cmdline" 2>/dev/null; then
    kill -s TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -s KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
