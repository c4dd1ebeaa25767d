#!/usr/bin/env bash
# One agent on a private etcd (run as root; the agent runs as `postgres`): RSS after 60 s idle, then wrk on
# /primary and /patroni. For comparing builds of the same source, e.g. release profiles:
#   bash bench/one-agent.sh target/release/patroni LABEL
# Needs etcd, wrk, curl and PostgreSQL 15 under /usr/lib/postgresql/15/bin.
set -u
bin=$1; label=$2
d=$(mktemp -d /tmp/m-XXXX); chmod 755 "$d"; cp "$bin" "$d/patroni"; chmod 755 "$d/patroni"
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ec=$(port); ep=$(port); api=$(port); pg=$(port)
etcd --data-dir "$d/etcd" --listen-client-urls http://127.0.0.1:$ec --advertise-client-urls http://127.0.0.1:$ec \
  --listen-peer-urls http://127.0.0.1:$ep --initial-advertise-peer-urls http://127.0.0.1:$ep \
  --initial-cluster default=http://127.0.0.1:$ep > "$d/etcd.log" 2>&1 &
etcd_pid=$!
mkdir -p "$d/data"; chown -R postgres:postgres "$d"; chmod 700 "$d/data"
cat > "$d/p.yml" <<YML
scope: m
name: m1
restapi: {listen: 127.0.0.1:$api, connect_address: 127.0.0.1:$api}
etcd3: {hosts: 127.0.0.1:$ec}
bootstrap: {dcs: {ttl: 30, loop_wait: 10, retry_timeout: 10}}
postgresql:
  listen: 127.0.0.1:$pg
  connect_address: 127.0.0.1:$pg
  data_dir: $d/data
  bin_dir: /usr/lib/postgresql/15/bin
  authentication: {superuser: {username: postgres, password: x}, replication: {username: rep, password: y}}
  parameters: {unix_socket_directories: $d}
  pg_hba: [local all all trust, host all all 127.0.0.1/32 trust]
YML
chown postgres "$d/p.yml"
sleep 2
runuser -u postgres -- "$d/patroni" "$d/p.yml" > "$d/agent.log" 2>&1 &
sleep 0.5
apid=$(pgrep -u postgres -f "$d/patroni $d/p.yml" | head -1)
for i in $(seq 1 120); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$api/primary)" = 200 ] && break; sleep 0.5; done
sleep 60
rss=$(grep -E 'VmRSS|RssAnon|RssFile' /proc/$apid/status | tr -s ' ' | tr '\n' ' ')
cpu=$(awk '{print $14+$15}' /proc/$apid/stat)
p1=$(wrk -t2 -c32 -d10s http://127.0.0.1:$api/primary | grep Requests/sec)
p2=$(wrk -t2 -c32 -d10s http://127.0.0.1:$api/patroni | grep Requests/sec)
echo "$label size=$(stat -c %s $bin) $rss ticks_after_start_and_60s_idle=$cpu /primary $p1 /patroni $p2"
kill -TERM $apid; sleep 5; kill $etcd_pid; sleep 1
pkill -f "$d/data" 2>/dev/null
rm -rf "$d"
