#!/usr/bin/env bash
# Requests/s of the REST API under wrk while a fake HA loop republishes the snapshot every 100 ms.
# Usage: bash crates/api/bench/wrk.sh [seconds]   (needs `wrk`: apt-get install -y wrk)
# With PRIMARY_API=http://h:p and REPLICA_API=http://h:p it measures running agents instead of the fake node.
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
if [[ -n "${PRIMARY_API:-}" ]]; then
  bench() { printf '%-22s %12s req/s\n' "$2" "$(wrk -t2 -c32 -d"${secs}s" "$1$2" | awk '/Requests\/sec/ {print $2}')"; }
  echo "wrk -t2 -c32 -d${secs}s against $PRIMARY_API / ${REPLICA_API:-$PRIMARY_API}"
  bench "$PRIMARY_API" /primary
  bench "${REPLICA_API:-$PRIMARY_API}" '/replica?lag=1MB'
  bench "$PRIMARY_API" /patroni
  bench "$PRIMARY_API" /metrics
  exit 0
fi
cargo build --release -p patroni-api --example fake_node >&2
bin=target/release/examples/fake_node
port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() { # role path
  local port; port=$(port_of)
  "$bin" "127.0.0.1:$port" "$1" 2>/dev/null & local pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
  local rps
  rps=$(wrk -t2 -c32 -d"${secs}s" "http://127.0.0.1:$port$2" | awk '/Requests\/sec/ {print $2}')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '%-22s %-8s %12s req/s\n' "$2" "$1" "$rps"
}
echo "wrk -t2 -c32 -d${secs}s, $(nproc) cores, release build"
run primary /primary
run replica '/replica?lag=1MB'
run primary /patroni
run primary /metrics
