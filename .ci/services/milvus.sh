#!/usr/bin/env bash
# Milvus 2.3.5 standalone for the integration tests (sinks/milvus,
# cmd/imgvec), from the pinned PyPI wheel `milvus` (.ci/lib/install-milvus.sh):
# the real server with embedded etcd and rocksmq, no MinIO (local storage).
#
#   start  installs if needed, renders the config, starts the server unless
#          one already answers on the port (it is then reused, and `stop`
#          leaves it alone), waits until it is healthy, and prints
#          IMGVEC_TEST_MILVUS_ADDR=127.0.0.1:PORT to stdout (all else to stderr).
#   stop   stops the server only if this script started it (TERM, then KILL).
#   kill   SIGKILLs the server this script started (fault tests);
#          IMGVEC_MILVUS_KEEP_DATA=1 `start` then restarts it on the same data.
#
# IMGVEC_MILVUS_PORT (default 19600) is the gRPC port; the server also
# listens on PORT+1..PORT+11 (its internal services, embedded etcd) and
# PORT+90 (health and metrics). IMGVEC_MILVUS_DIR (default
# .cache/milvus/PORT) holds config, data and logs. Test settings: shorter
# time-tick and coordinator intervals, so that Strong reads and collection
# loads wait less, and a session TTL of 10 s (a server restarted after
# SIGKILL waits that long for its old sessions to expire). Every component
# talks on 127.0.0.1. Runs as the calling user (Milvus does not refuse
# root).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${IMGVEC_MILVUS_PORT:-19600}
dir=${IMGVEC_MILVUS_DIR:-$root/.cache/milvus/$port}
metrics=$((port + 90))
pidfile="$dir/server.pid" # present while this script's server runs
healthy() { curl -sf --max-time 2 "http://127.0.0.1:$metrics/healthz" 2>/dev/null | grep -q OK; }

start() {
  local python bin
  python=$("$root/.ci/lib/install-milvus.sh")
  bin="$root/.cache/milvus/bin"
  if healthy; then
    echo "milvus: reusing the server already on 127.0.0.1:$port" >&2
    echo "IMGVEC_TEST_MILVUS_ADDR=127.0.0.1:$port"
    return
  fi
  # Test data is disposable: a fresh start begins empty (a restart on old
  # data waits for the dead server's sessions to expire). The fault tests
  # restart on the same data with IMGVEC_MILVUS_KEEP_DATA=1.
  [ "${IMGVEC_MILVUS_KEEP_DATA:-}" = 1 ] || rm -rf "$dir/data"
  mkdir -p "$dir"
  "$python" - "$dir" "$port" <<'PY' >&2
import sys, milvus
d, port = sys.argv[1], int(sys.argv[2])
cfg = milvus.MilvusServerConfig(data_dir=d)
names = ['proxy_port', 'etcd_port', 'root_coord_port', 'proxy_internal_port', 'query_coord_port',
         'query_node_port', 'index_coord_port', 'index_node_port', 'data_coord_port', 'data_node_port']
for i, k in enumerate(names):
    cfg.set(k, port + i)
for k, v in {'proxy.timeTickInterval': 50, 'queryCoord.checkInterval': 200, 'queryCoord.distPullInterval': 100,
             'common.session.ttl': 10, 'dataCoord.segment.maxSize': 512, 'log.level': 'warn'}.items():
    cfg.set(k, v)
# The components talk to each other on loopback only, not on the first
# non-loopback address they find.
for c in ('rootCoord', 'proxy', 'queryCoord', 'queryNode', 'indexNode', 'dataCoord', 'dataNode'):
    cfg.set(c + '.ip', '127.0.0.1')
# Not cfg.resolve(): it test-binds every port, which fails on ports with
# connections in TIME_WAIT after a restart.
cfg.resolve_storage()
cfg.write_config()  # DIR/configs/milvus.yaml
conf = d + '/configs/milvus.yaml'
# Embedded etcd listens on 2379/2380 unless given its own config: keep it
# on this instance's ports so that several servers can run side by side.
etcd = d + '/configs/embedEtcd.yaml'
with open(etcd, 'w') as f:
    f.write(f"listen-client-urls: http://127.0.0.1:{port+1}\nadvertise-client-urls: http://127.0.0.1:{port+1}\n"
            f"listen-peer-urls: http://127.0.0.1:{port+11}\ninitial-advertise-peer-urls: http://127.0.0.1:{port+11}\n"
            f"initial-cluster: default=http://127.0.0.1:{port+11}\n")
text = open(conf).read().replace('\n  use:\n    embed: true', f'\n  config:\n    path: {etcd}\n  use:\n    embed: true', 1)
open(conf, 'w').write(text)
PY
  local t0=$(date +%s%N)
  (
    cd "$dir"
    DEPLOY_MODE=STANDALONE METRICS_PORT=$metrics MILVUS_RUN_DIR="$dir/run" \
      LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      setsid nohup "$bin/milvus" run standalone >"$dir/logs/server.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
  )
  local pid
  pid=$(cat "$pidfile")
  for _ in $(seq 1 240); do
    if healthy; then
      echo "milvus: started on 127.0.0.1:$port in $(( ($(date +%s%N) - t0) / 1000000 )) ms (pid $pid, data $dir)" >&2
      echo "IMGVEC_TEST_MILVUS_ADDR=127.0.0.1:$port"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "milvus: failed to start on 127.0.0.1:$port; last log lines:" >&2
  tail -30 "$dir/logs/server.log" >&2 || true
  stop_server TERM
  exit 1
}

# stop_server SIGNAL: stops the server this script started, waits for it.
stop_server() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && grep -q milvus "/proc/$pid/cmdline" 2>/dev/null; then
    kill -s "$1" "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -s KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  rm -f "$pidfile"
}

case "${1:-start}" in
  start) start ;;
  stop) stop_server TERM ;;
  kill) stop_server KILL ;;
  *) echo "usage: $0 start|stop|kill" >&2; exit 2 ;;
esac
