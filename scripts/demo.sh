#!/usr/bin/env bash
# Starts a working 3-member patroni-rs cluster on this machine: one etcd and three agents, each with its own
# PostgreSQL, all on loopback. Ctrl-C stops every process it started.
#
#   bash scripts/demo.sh            # build, start, show the cluster, wait for Ctrl-C
#   DEMO_EXIT_WHEN_READY=1 bash scripts/demo.sh   # start, check, stop (used by the test suite)
#
# Ports: etcd 12379/12380, PostgreSQL 15431-15433, REST API 18001-18003. DEMO_DIR overrides the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

say() { printf '\033[1m%s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/postgres" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
command -v cargo >/dev/null || die "cargo is needed to build patroni-rs"
if ! command -v etcd >/dev/null; then
  [ "$(id -u)" -eq 0 ] || die "etcd is missing: sudo apt-get install -y etcd-server"
  say "installing etcd (Debian etcd-server)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
fi

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
  for p in "${pids[@]:1}"; do kill -TERM "$p" 2>/dev/null || true; done
  # runuser may not pass the signal on: address the agents themselves too.
  pkill -TERM -f "$dir/bin/patroni " 2>/dev/null || true
  for p in "${pids[@]:1}"; do
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$p" 2>/dev/null || true
  done
  [ ${#pids[@]} -gt 0 ] && { kill -TERM "${pids[0]}" 2>/dev/null || true; wait "${pids[0]}" 2>/dev/null || true; }
  for i in 1 2 3; do
    [ -f "$dir/data$i/postmaster.pid" ] && "${run_as[@]}" "$pg_bin/pg_ctl" stop -m immediate -D "$dir/data$i" >/dev/null 2>&1 || true
  done
  say "stopped; logs and data are in $dir"
}
trap cleanup INT TERM EXIT

etcd --name demo --data-dir "$dir/etcd" \
  --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
  --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
  --initial-cluster demo=http://127.0.0.1:12380 >"$dir/etcd.log" 2>&1 &
pids+=($!)

for i in 1 2 3; do
  cat >"$dir/pg$i.yml" <<EOF
scope: demo
name: pg$i
restapi:
  listen: 127.0.0.1:1800$i
  connect_address: 127.0.0.1:1800$i
etcd3:
  hosts: 127.0.0.1:12379
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
  listen: 127.0.0.1:1543$i
  connect_address: 127.0.0.1:1543$i
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

for _ in $(seq 1 50); do curl -sf http://127.0.0.1:12379/health >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf http://127.0.0.1:12379/health >/dev/null || die "etcd did not start, see $dir/etcd.log"

for i in 1 2 3; do
  "${run_as[@]}" "$dir/bin/patroni" "$dir/pg$i.yml" >"$dir/pg$i.log" 2>&1 &
  pids+=($!)
done

say "waiting for the cluster to bootstrap (one primary, two streaming replicas)"
ready=""
for _ in $(seq 1 120); do
  primaries=0 streaming=0
  for i in 1 2 3; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:1800$i/primary" || true)
    [ "$code" = 200 ] && primaries=$((primaries + 1))
    curl -s "http://127.0.0.1:1800$i/patroni" 2>/dev/null | grep -q '"replication_state": "streaming"' && streaming=$((streaming + 1))
  done
  if [ "$primaries" -eq 1 ] && [ "$streaming" -eq 2 ]; then ready=1; break; fi
  sleep 1
done
[ -n "$ready" ] || die "the cluster did not come up within 120 s; see $dir/pg*.log"

ctl=("$dir/bin/patronictl" -c "$dir/pg1.yml")
"${ctl[@]}" list || curl -s http://127.0.0.1:18001/cluster
cat <<EOF

The cluster is running. Try, in another terminal:
  $dir/bin/patronictl -c $dir/pg1.yml list
  psql "postgres://postgres:postgres@127.0.0.1:15431,127.0.0.1:15432,127.0.0.1:15433/postgres?target_session_attrs=read-write"
Watch a failover: kill the primary's agent and its PostgreSQL, then list again after ~20 s:
  pkill -KILL -f "patroni $dir/pgN.yml" && $pg_bin/pg_ctl stop -m immediate -D $dir/dataN   (N = the Leader)
Or a switchover:  $dir/bin/patronictl -c $dir/pg1.yml switchover --force
Logs: $dir/pg1.log $dir/pg2.log $dir/pg3.log     Ctrl-C stops everything.
EOF

if [ -n "${DEMO_EXIT_WHEN_READY:-}" ]; then
  exit 0
fi
while :; do sleep 3600; done
