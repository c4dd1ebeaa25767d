#!/usr/bin/env bash
# Side-by-side benchmark of patroni-rs and Python Patroni on etcd3 (issue #10). Run as root; agents and
# PostgreSQL run as `postgres`. See BENCHMARKS.md for the results and bench/bench.py for what each pass does.
#
#   bash bench/run.sh setup                         # release build + Python Patroni venv (/tmp/pyp-bench)
#   bash bench/run.sh pass PROFILE FROM TO [OPTS]   # passes FROM..TO, each implementation in turn
#        PROFILE = fast (ttl 20 / loop_wait 2 / retry_timeout 3) | default (30 / 10 / 10)
#        OPTS    = --footprint (60 s idle: RSS, CPU, etcd calls)  --rest (wrk on /primary, /replica, /patroni)
#                  --random-phase (node death at a random point of the HA loop)
#                  --sync-mode on|quorum [--strict] (synchronous replication) --switchovers N (N in a row)
#                  --only-switchover (bootstrap, switchovers, PostgreSQL crash: the synchronous-mode figures)
#        (bench/bench.py run --only-footprint: bootstrap, footprint, stop)
#   bash bench/run.sh report                        # markdown tables from bench/results/*.jsonl
#
# Results append to bench/results/PROFILE.jsonl. Before each pass it waits (up to BENCH_MAX_WAIT s, default 120)
# for a 1-minute load below 1.0 and no cargo/rustc, and records the load it got. BENCH_RS_BIN=DIR takes patroni and
# patronictl from DIR instead of target/release (copy them once so concurrent builds do not change them mid-run).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BENCH_VENV:-/tmp/pyp-bench}
case "${1:-}" in
  setup)
    cargo build --release -p patroni-agent -p patroni-ctl
    [ -x "$venv/bin/patroni" ] || { /usr/bin/python3 -m venv "$venv" && "$venv/bin/pip" install 'patroni[etcd3]' psycopg2-binary; }
    command -v wrk >/dev/null || apt-get install -y wrk
    ;;
  pass)
    profile=$2 from=$3 to=$4; shift 4
    mkdir -p bench/results
    for rep in $(seq "$from" "$to"); do
      for impl in rs py; do
        "$venv/bin/python" bench/bench.py run --impl "$impl" --profile "$profile" --rep "$rep" \
          --out "bench/results/$profile.jsonl" "$@"
      done
    done
    ;;
  report)
    "$venv/bin/python" bench/bench.py report bench/results/*.jsonl
    ;;
  *) sed -n 2,15p "$0"; exit 1 ;;
esac
