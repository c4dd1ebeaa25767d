#!/usr/bin/env bash
# Builds the release artefacts of patroni-rs:
#   target/dist/patroni-rs-<version>-x86_64-linux-musl.tar.gz  static binaries patroni, patronictl,
#                                                              patroni_raft_controller (no runtime dependency)
#   target/dist/patroni-rs_<version>_amd64.deb                 the same binaries, the systemd units, a sample
#                                                              /etc/patroni/config.yml, completions, man pages
# Installs what the build needs and is missing (the musl target of the Rust toolchain; Debian's musl-tools for the
# C and assembly part of ring), so it works on a fresh machine of this project's kind. Then check the package with
#   PATRONI_DEB=target/dist/patroni-rs_<version>_amd64.deb cargo test -p patroni-agent --test package_deb
#
# On a machine shared by several builds, run it under their lock: `flock /tmp/cargo-build.lock bash scripts/package.sh`.
#
# The .deb is assembled with dpkg-deb from a staged tree rather than with cargo-deb: dpkg-deb is part of every
# Debian system, while cargo-deb would be compiled from crates.io first (minutes on 2 cores, every fresh machine);
# the tree is a dozen files, listed below.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { echo "no workspace version in Cargo.toml" >&2; exit 1; }

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "adding the Rust target $target"
  rustup target add "$target"
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: musl-gcc (install with: sudo apt-get install -y musl-tools)" >&2
    exit 1
  fi
  echo "installing musl-tools from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
fi
for tool in dpkg-deb gzip; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing: $tool" >&2; exit 1; }
done

# ring's C and assembly are compiled by musl-gcc (glibc's headers would not link statically against musl).
export CC_x86_64_unknown_linux_musl=musl-gcc
cargo build --release --locked --target "$target" -p patroni-agent -p patroni-ctl -p patroni-raft-controller --bins
bin=target/$target/release
for b in patroni patronictl patroni_raft_controller; do
  # A static binary has no program interpreter: refuse to package one that would need a loader at run time.
  if readelf -l "$bin/$b" 2>/dev/null | grep -q "Requesting program interpreter"; then
    echo "$bin/$b is dynamically linked" >&2
    exit 1
  fi
done

dist=target/dist
stage=$(mktemp -d "${TMPDIR:-/tmp}/patroni-rs-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$dist"

# Completions and man pages of patronictl, from its clap definition (a host build of a small example).
cargo run --quiet --locked -p patroni-ctl --example patronictl_assets -- "$stage/assets" >/dev/null

# The static binaries alone, for hosts without dpkg.
tarname=patroni-rs-$version-x86_64-linux-musl
mkdir -p "$stage/$tarname"
cp "$bin/patroni" "$bin/patronictl" "$bin/patroni_raft_controller" "$stage/$tarname/"
cp README.md MIGRATING.md packaging/config.yml.sample packaging/patroni.service "$stage/$tarname/"
tar -C "$stage" --owner=0 --group=0 -czf "$dist/$tarname.tar.gz" "$tarname"

# The Debian package's tree.
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/patroni" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/man/man1" "$root/usr/share/doc/patroni-rs"
install -m 755 "$bin/patroni" "$bin/patronictl" "$bin/patroni_raft_controller" "$root/usr/bin/"
install -m 644 packaging/patroni.service packaging/patroni@.service "$root/lib/systemd/system/"
install -m 644 packaging/config.yml.sample "$root/etc/patroni/config.yml.sample"
install -m 644 "$stage/assets/completions/patronictl.bash" "$root/usr/share/bash-completion/completions/patronictl"
install -m 644 "$stage/assets/completions/_patronictl" "$root/usr/share/zsh/vendor-completions/_patronictl"
install -m 644 "$stage/assets/completions/patronictl.fish" "$root/usr/share/fish/vendor_completions.d/patronictl.fish"
for page in "$stage"/assets/man/*.1; do
  gzip -9n <"$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
done
chmod 644 "$root"/usr/share/man/man1/*.gz
install -m 644 README.md MIGRATING.md BENCHMARKS.md packaging/debian/copyright "$root/usr/share/doc/patroni-rs/"
install -m 755 packaging/debian/postinst packaging/debian/postrm packaging/debian/prerm "$root/DEBIAN/"
install -m 644 packaging/debian/conffiles "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" packaging/debian/control.in >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

deb=$dist/patroni-rs_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "built:"
ls -l "$bin/patroni" "$bin/patronictl" "$bin/patroni_raft_controller" "$dist/$tarname.tar.gz" "$deb"
# Absolute: the test runs in its crate's directory, where a path relative to the workspace does not resolve.
echo "check the package: PATRONI_DEB=$PWD/$deb cargo test -p patroni-agent --test package_deb"
