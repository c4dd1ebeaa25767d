#!/usr/bin/env bash
# Runs the whole test suite. Installs the real servers the integration tests start (etcd, ZooKeeper from Debian) when they are
# missing, so it works on a fresh machine of this project's kind. PostgreSQL 15 server binaries come with the image.
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
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || {
  echo "missing: PostgreSQL server binaries under /usr/lib/postgresql/*/bin" >&2
  exit 1
}

# Python Patroni, for the compatibility tests that compare both implementations on one cluster. It comes from PyPI
# into a venv on the system Python (readable by the unprivileged user the agents run as); without it those tests
# say they skipped.
venv=${PATRONI_PY_VENV:-/tmp/patroni-py-venv}
if [ ! -x "$venv/bin/patronictl" ] && [ -x /usr/bin/python3 ]; then
  echo "installing Python Patroni 4.1.5 into $venv for the compatibility tests"
  if /usr/bin/python3 -m venv "$venv" >/dev/null 2>&1 &&
    "$venv/bin/pip" install -q 'patroni[etcd3]==4.1.5' psycopg2-binary >/dev/null 2>&1; then
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
  exec cargo nextest run --workspace --no-fail-fast "$@"
else
  exec cargo test --workspace --no-fail-fast "$@"
fi
