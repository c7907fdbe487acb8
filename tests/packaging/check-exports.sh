#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fails when libicap.so's exported symbols differ from the checked-in list
# (src/libicap.symbols, one name per line, sorted): a new export, a lost one
# or a leaked llhttp or C++ symbol (which would clash with another copy in
# the same process) all show as a difference, so the list, and with it the
# ABI, changes only on purpose. Also checks the SONAME libicap.so.0.
#   check-exports.sh LIB SYMBOL_LIST
set -euo pipefail
lib=$1
list=$2
actual=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' |
         grep -v -x 'ICAP_0' | LC_ALL=C sort -u)
expected=$(grep -v -e '^#' -e '^$' "$list" | LC_ALL=C sort -u)
if [ "$actual" != "$expected" ]; then
  echo "FAIL: exported symbols differ from $list (< exported only, > listed only):"
  diff <(echo "$actual") <(echo "$expected") | grep '^[<>]' | head -40
  exit 1
fi
bad=$(echo "$actual" | grep -v -E '^icap_[a-z0-9_]+$' || true)
if [ -n "$bad" ]; then
  echo "FAIL: symbols outside icap_*:"; echo "$bad" | head -20; exit 1
fi
count=$(echo "$actual" | wc -l)
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "libicap.so.0" ] || { echo "FAIL: SONAME is '$soname'"; exit 1; }
echo "ok: $count icap_* symbols, as listed in $list; SONAME $soname"
