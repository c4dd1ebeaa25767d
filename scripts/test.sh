#!/usr/bin/env bash
# Runs the whole test suite. Installs the real servers the integration tests start (etcd from Debian) when they are
# missing, so it works on a fresh machine of this project's kind. PostgreSQL 15 server binaries come with the image.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
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

if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast "$@"
else
  exec cargo test --workspace --no-fail-fast "$@"
fi
