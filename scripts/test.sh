#!/usr/bin/env bash
# Runs the whole test suite. Installs the real servers the integration tests start (etcd, ZooKeeper from Debian) when they are
# missing, so it works on a fresh machine of this project's kind. PostgreSQL 15 server binaries come with the image.
#
# Then the PostgreSQL matrix (README, "Supported PostgreSQL versions"): the tests that start PostgreSQL take its
# binaries from PG_BIN_DIR; the whole suite runs on 15, the cluster tests on 16 and 18, the single-server tests on
# 12, 13, 14 and 17. The other majors are fetched into PG_VERSIONS_DIR by scripts/pg-versions.sh. With arguments
# (a filter for the suite), or with PG_MATRIX=0, only the suite on 15 runs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
# ZooKeeper (and a JRE) for the zookeeper backend's tests.
[ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1 || need_apt+=(zookeeper)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need_apt[*]} (install with: sudo apt-get install -y ${need_apt[*]})" >&2
    exit 1
  fi
  echo "installing ${need_apt[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
matrix=${PG_MATRIX:-$([ $# -eq 0 ] && echo 1 || echo 0)}
if [ "$matrix" = 1 ]; then
  bash scripts/pg-versions.sh install 15 12 13 14 16 17 18
else
  bash scripts/pg-versions.sh install 15
fi
export PG_BIN_DIR=${PG_BIN_DIR:-$(bash scripts/pg-versions.sh bindir 15)}

# Python Patroni, for the compatibility tests that compare both implementations on one cluster. It comes from PyPI
# into a venv on the system Python (readable by the unprivileged user the agents run as); without it those tests
# say they skipped.
venv=${PATRONI_PY_VENV:-/tmp/patroni-py-venv}
# With the etcd v2 (python-etcd) and ZooKeeper (kazoo) clients too: the mixed clusters run on those backends as well.
if ! { [ -x "$venv/bin/patronictl" ] && "$venv/bin/python" -c 'import etcd, kazoo' 2>/dev/null; } && [ -x /usr/bin/python3 ]; then
  echo "installing Python Patroni 4.1.5 into $venv for the compatibility tests"
  if /usr/bin/python3 -m venv "$venv" >/dev/null 2>&1 &&
    "$venv/bin/pip" install -q 'patroni[etcd3,etcd,zookeeper]==4.1.5' psycopg2-binary >/dev/null 2>&1; then
    chmod -R a+rX "$venv"
  else
    echo "Python Patroni could not be installed; the compatibility tests will skip"
  fi
fi
if [ -x "$venv/bin/patronictl" ]; then
  export PATRONI_PYTHON="$venv/bin/python"
  export PYTHON_PATRONICTL="$venv/bin/patronictl"
  export PYTHON_PATRONI="$venv/bin/patroni"
fi

if cargo nextest --version >/dev/null 2>&1; then
  nextest=1
  run_suite() { cargo nextest run --workspace --no-fail-fast "$@"; }
else
  nextest=0
  run_suite() { cargo test --workspace --no-fail-fast "$@"; }
fi

status=0
echo "== the whole suite on PostgreSQL $("$PG_BIN_DIR/postgres" --version | awk '{print $3}') ($PG_BIN_DIR)"
run_suite "$@" || status=$?
[ "$matrix" = 1 ] || exit $status

# What runs on the other majors. Cluster majors (full tool set, no OpenSSL: no TLS tests): every PostgreSQL-level
# integration test, bootstrap, replication and a failover whose old primary rejoins with pg_rewind, a switchover
# (replicas stream through their slots), member slots kept for member_slots_ttl then dropped, permanent physical and
# logical slots (pgoutput) kept across a failover with the consumer reading on, and patroni
# --validate-config/--generate-config. Server-only majors
# (initdb, pg_ctl and postgres only): the state queries, configuration files, start/stop, reload and promotion of
# every_major.rs, plus the same command-line checks.
cluster_tests='(package(patroni-postgres) & kind(test) & !binary(tls))
  | (package(patroni-agent) & (binary(cli) | test(=bootstrap_one_primary_two_streaming_replicas)
     | test(=diverged_old_primary_rewinds_and_follows) | test(=switchover_to_a_named_candidate_and_to_any)
     | test(=a_gone_members_slot_is_kept_for_member_slots_ttl_then_dropped)
     | test(=permanent_and_logical_slots_survive_a_failover)))'
server_tests='(package(patroni-postgres) & (binary(every_major) | test(=reload_applies_and_restart_only_parameters_are_pending)
     | test(=generate_config_from_a_running_instance) | test(=missing_binaries_foreign_data_dir_and_port_in_use)))
  | (package(patroni-agent) & binary(cli))'
run_on() {
  local major=$1 kind=$2 bin
  bin=$(bash scripts/pg-versions.sh bindir "$major")
  echo "== $kind tests on PostgreSQL $("$bin/postgres" --version | awk '{print $3}') ($bin)"
  if [ "$nextest" = 1 ]; then
    local filter=$cluster_tests
    [ "$kind" = cluster ] || filter=$server_tests
    PG_BIN_DIR=$bin cargo nextest run --workspace --no-fail-fast -E "$filter"
  elif [ "$kind" = cluster ]; then
    PG_BIN_DIR=$bin cargo test --no-fail-fast -p patroni-postgres --test bad_input --test bootstrap \
      --test config_and_callbacks --test every_major --test lifecycle --test replication --test rewind_edges &&
      PG_BIN_DIR=$bin cargo test --no-fail-fast -p patroni-agent --test cli &&
      for t in cluster::bootstrap_one_primary_two_streaming_replicas cluster_failover::diverged_old_primary_rewinds_and_follows \
        cluster_switchover::switchover_to_a_named_candidate_and_to_any \
        cluster_slots::a_gone_members_slot_is_kept_for_member_slots_ttl_then_dropped \
        cluster_slots::permanent_and_logical_slots_survive_a_failover; do
        PG_BIN_DIR=$bin cargo test -p patroni-agent --test "${t%%::*}" -- --exact "${t#*::}" || return 1
      done
  else
    PG_BIN_DIR=$bin cargo test --no-fail-fast -p patroni-postgres --test every_major &&
      PG_BIN_DIR=$bin cargo test --no-fail-fast -p patroni-agent --test cli
  fi
}
for major in 16 18; do run_on "$major" cluster || status=$?; done
for major in 12 13 14 17; do run_on "$major" server || status=$?; done
exit $status
