#!/usr/bin/env bash
# Builds the .NET binding with Mono's mcs: bin/Shmbus.dll (and its XML docs), the test
# runner bin/Tests.exe, the examples bin/Writer.exe and bin/Reader.exe, and libshmbus.so
# (cargo build --release -p shmbus-ffi) next to them, where Mono finds it.
# Needs mcs (Debian: apt-get install mono-devel) and cargo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$here"
command -v mcs >/dev/null || { echo "build.sh: mcs not found: install Mono (apt-get install mono-devel)" >&2; exit 1; }

cargo build --release -q -p shmbus-ffi --manifest-path "$repo/Cargo.toml"
mkdir -p bin
cp "${CARGO_TARGET_DIR:-$repo/target}/release/libshmbus.so" bin/

mcs -nologo -unsafe -optimize+ -warnaserror+ -target:library \
    -doc:bin/Shmbus.xml -out:bin/Shmbus.dll src/*.cs
mcs -nologo -unsafe -warnaserror+ -r:bin/Shmbus.dll -out:bin/Tests.exe tests/*.cs
mcs -nologo -warnaserror+ -r:bin/Shmbus.dll -out:bin/Writer.exe examples/Writer.cs
mcs -nologo -warnaserror+ -r:bin/Shmbus.dll -out:bin/Reader.exe examples/Reader.cs
echo "built $here/bin/Shmbus.dll"
