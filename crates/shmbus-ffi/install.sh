#!/usr/bin/env bash
# Builds libshmbus (release) and installs it for C and C++ programs:
#   PREFIX/lib/libshmbus.so, PREFIX/lib/libshmbus.a, PREFIX/include/shmbus.h, shmbus.hpp,
#   PREFIX/lib/pkgconfig/shmbus.pc (generated from shmbus.pc.in).
# Usage: crates/shmbus-ffi/install.sh [PREFIX]   (default /usr/local)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${1:-/usr/local}"
target="${CARGO_TARGET_DIR:-$here/../../target}"
cargo build --release -q -p shmbus-ffi --manifest-path "$here/Cargo.toml"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/../../Cargo.toml" | head -1)
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target/release/libshmbus.so" "$prefix/lib/"
install -m 0644 "$target/release/libshmbus.a" "$prefix/lib/"
install -m 0644 "$here/include/shmbus.h" "$prefix/include/"
[ -f "$here/include/shmbus.hpp" ] && install -m 0644 "$here/include/shmbus.hpp" "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/shmbus.pc.in" \
    > "$prefix/lib/pkgconfig/shmbus.pc"
echo "installed libshmbus $version in $prefix (pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig)"
