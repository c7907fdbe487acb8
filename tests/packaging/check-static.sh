#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Links a C program (consumer.c) and a C++ program (consumer.cc) against the
# installed static libicap.a, both with `pkg-config --static --libs libicap`
# and with find_package(icap) + icap::icap_static, and runs all four.
# For pkg-config, libicap.so is removed from a copy of the installed prefix,
# so that -licap can only resolve to libicap.a (icap::icap_static names
# libicap.a itself); each program is then checked not to need libicap.so.0
# at run time.
#
# usage: check-static.sh BUILD_DIR SOURCE_DIR(tests/packaging)
set -euo pipefail
build=$1 src=$2
cc=${CC:-cc} cxx=${CXX:-c++}
extra=${ICAP_TEST_CFLAGS:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
lib=$(find "$tmp/prefix" -name 'libicap.a' | head -n 1)
[ -n "$lib" ] || { echo "SKIP: no libicap.a installed (ICAP_BUILD_STATIC=OFF)"; exit 77; }
cp -a "$tmp/prefix" "$tmp/static"
libdir=$(dirname "$(find "$tmp/static" -name 'libicap.a' | head -n 1)")
rm -f "$libdir"/libicap.so*
export PKG_CONFIG_PATH=$libdir/pkgconfig

not_shared() {  # not_shared PROGRAM: it must not need libicap.so.0
  if objdump -p "$1" | grep -q 'NEEDED.*libicap\.so'; then
    echo "FAIL: $1 needs libicap.so although it was linked statically"; exit 1
  fi
}

flags=$(pkg-config --static --cflags --libs libicap)
echo "pkg-config --static --libs libicap: $flags"
$cc $extra -o "$tmp/c_pc" "$src/consumer.c" $flags
$cxx $extra -std=c++17 -o "$tmp/cxx_pc" "$src/consumer.cc" $flags
# A C program has to link with the C compiler driver: libstdc++ must come
# from the .pc file, not from the driver.
for p in c_pc cxx_pc; do not_shared "$tmp/$p"; "$tmp/$p"; done

cmake -S "$src/cmake_static_consumer" -B "$tmp/cm" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" \
      -DCMAKE_C_FLAGS="$extra" -DCMAKE_CXX_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" \
      >"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; exit 1; }
cmake --build "$tmp/cm" >"$tmp/build.log" 2>&1 || { tail -n 40 "$tmp/build.log"; exit 1; }
for p in consumer_c consumer_cxx; do not_shared "$tmp/cm/$p"; "$tmp/cm/$p"; done
echo "ok: static C and C++ consumers via pkg-config --static and icap::icap_static"
