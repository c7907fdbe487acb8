#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the build into a temporary prefix, then builds a C program with
# `cc prog.c $(pkg-config --cflags --libs libicap)` alone and a CMake project
# with find_package(icap), and runs both against the installed library.
set -euo pipefail
build=$1 src=$2
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name 'libicap.so.0' | head -n 1)")
test -f "$tmp/prefix/include/icap/icap.h"
test -f "$libdir/pkgconfig/libicap.pc"
test -f "$libdir/cmake/icap/icapConfig.cmake"
export PKG_CONFIG_PATH=$libdir/pkgconfig
# The sanitizer flags of an instrumented build must reach the test programs.
extra=${ICAP_TEST_CFLAGS:-}
$cc $extra -o "$tmp/prog" "$src/consumer.c" $(pkg-config --cflags --libs libicap) -lpthread
LD_LIBRARY_PATH=$libdir "$tmp/prog"
cmake -S "$src/cmake_consumer" -B "$tmp/cm" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" \
      -DCMAKE_C_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH=$libdir "$tmp/cm/consumer"
echo "ok: pkg-config and find_package consumers built and ran"
