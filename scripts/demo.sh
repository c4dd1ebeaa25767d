#!/usr/bin/env bash
# Starts a working 3-member patroni-rs cluster on this machine: three agents, each with its own PostgreSQL, that
# form the DCS themselves (embedded Raft), all on loopback. Nothing but PostgreSQL and a Rust toolchain needed.
# Ctrl-C stops every process it started.
#
#   bash scripts/demo.sh            # build, start, show the cluster, wait for Ctrl-C
#   DEMO_EXIT_WHEN_READY=1 bash scripts/demo.sh   # start, check, stop (used by the test suite)
#
# Ports: PostgreSQL 15431-15433, REST API 18001-18003, Raft 12221-12223 (DEMO_PG_BASE, DEMO_API_BASE,
# DEMO_RAFT_BASE move them). DEMO_DIR overrides the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

say() { printf '\033[1m%s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/postgres" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
command -v cargo >/dev/null || die "cargo is needed to build patroni-rs"
pg_base=${DEMO_PG_BASE:-15430}
api_base=${DEMO_API_BASE:-18000}
raft_base=${DEMO_RAFT_BASE:-12220}
# Or three explicit ports each (the test suite passes ports it reserved).
read -r -a pg_ports <<<"${DEMO_PG_PORTS:-$((pg_base + 1)) $((pg_base + 2)) $((pg_base + 3))}"
read -r -a api_ports <<<"${DEMO_API_PORTS:-$((api_base + 1)) $((api_base + 2)) $((api_base + 3))}"
read -r -a raft_ports <<<"${DEMO_RAFT_PORTS:-$((raft_base + 1)) $((raft_base + 2)) $((raft_base + 3))}"
pg_port() { echo "${pg_ports[$(($1 - 1))]}"; }
api_port() { echo "${api_ports[$(($1 - 1))]}"; }
raft_port() { echo "${raft_ports[$(($1 - 1))]}"; }

say "building patroni and patronictl"
cargo build -q -p patroni-agent -p patroni-ctl --bins

dir=${DEMO_DIR:-/tmp/patroni-rs-demo}
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the unprivileged 'postgres' user for PostgreSQL"
  run_as=(runuser -u postgres --)
fi
rm -rf "$dir"
mkdir -p "$dir/bin"
# Copied so the unprivileged user can run them whatever the permissions of the checkout's parents.
cp target/debug/patroni target/debug/patronictl "$dir/bin/"
chmod 755 "$dir" "$dir/bin" "$dir/bin/"*

pids=()
cleanup() {
  trap - INT TERM EXIT
  say "stopping the cluster"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # runuser may not pass the signal on: address the agents themselves too.
  pkill -TERM -f "$dir/bin/patroni " 2>/dev/null || true
  for p in "${pids[@]}"; do
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$p" 2>/dev/null || true
  done
  for i in 1 2 3; do
    [ -f "$dir/data$i/postmaster.pid" ] && "${run_as[@]}" "$pg_bin/pg_ctl" stop -m immediate -D "$dir/data$i" >/dev/null 2>&1 || true
  done
  say "stopped; logs and data are in $dir"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

for i in 1 2 3; do
  partners=""
  for j in 1 2 3; do [ "$j" = "$i" ] || partners="$partners 127.0.0.1:$(raft_port "$j"),"; done
  cat >"$dir/pg$i.yml" <<EOF
scope: demo
name: pg$i
restapi:
  listen: 127.0.0.1:$(api_port "$i")
  connect_address: 127.0.0.1:$(api_port "$i")
raft:
  data_dir: $dir/raft$i
  self_addr: 127.0.0.1:$(raft_port "$i")
  partner_addrs: [${partners%,} ]
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
  initdb:
  - encoding: UTF8
  - data-checksums
postgresql:
  listen: 127.0.0.1:$(pg_port "$i")
  connect_address: 127.0.0.1:$(pg_port "$i")
  data_dir: $dir/data$i
  bin_dir: $pg_bin
  pgpass: $dir/pgpass$i
  authentication:
    superuser: {username: postgres, password: postgres}
    replication: {username: replicator, password: replicator}
  parameters:
    unix_socket_directories: $dir
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 md5
  - host replication replicator 127.0.0.1/32 md5
EOF
done
[ ${#run_as[@]} -gt 0 ] && chown -R postgres: "$dir"

for i in 1 2 3; do
  "${run_as[@]}" "$dir/bin/patroni" "$dir/pg$i.yml" >"$dir/pg$i.log" 2>&1 &
  pids+=($!)
done

say "waiting for the cluster to bootstrap (one primary, two streaming replicas)"
ready=""
for _ in $(seq 1 "${DEMO_READY_TIMEOUT:-120}"); do
  primaries=0 streaming=0
  for i in 1 2 3; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(api_port "$i")/primary" || true)
    [ "$code" = 200 ] && primaries=$((primaries + 1))
    curl -s "http://127.0.0.1:$(api_port "$i")/patroni" 2>/dev/null | grep -q '"replication_state": "streaming"' && streaming=$((streaming + 1))
  done
  if [ "$primaries" -eq 1 ] && [ "$streaming" -eq 2 ]; then ready=1; break; fi
  sleep 1
done
[ -n "$ready" ] || die "the cluster did not come up within ${DEMO_READY_TIMEOUT:-120} s; see $dir/pg*.log"

ctl=("$dir/bin/patronictl" -c "$dir/pg1.yml")
"${ctl[@]}" list
cat <<EOF

The cluster is running. Try, in another terminal:
  $dir/bin/patronictl -c $dir/pg1.yml list
  psql "postgres://postgres:postgres@127.0.0.1:$(pg_port 1),127.0.0.1:$(pg_port 2),127.0.0.1:$(pg_port 3)/postgres?target_session_attrs=read-write"
Watch a failover: kill the primary's agent (SIGKILL leaves its PostgreSQL running, as with Patroni) and stop its
PostgreSQL, then list again after ~20 s:
  pkill -KILL -f "patroni $dir/pgN.yml" && $pg_bin/pg_ctl stop -m immediate -D $dir/dataN   (N = the Leader)
Or a switchover:  $dir/bin/patronictl -c $dir/pg1.yml switchover --force
Logs: $dir/pg1.log $dir/pg2.log $dir/pg3.log     Ctrl-C stops everything.
EOF

if [ -n "${DEMO_EXIT_WHEN_READY:-}" ]; then
  exit 0
fi
# In the background and waited for, so Ctrl-C or SIGTERM runs the cleanup at once.
while :; do
  sleep 3600 &
  wait $! || true
done
