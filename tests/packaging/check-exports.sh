#!/usr/bin/env bash
# Fails when libicap.so exports a symbol outside the icap_* C ABI (a leaked
# llhttp or C++ symbol would clash with another copy in the same process),
# or when it lacks the SONAME libicap.so.0.
set -euo pipefail
lib=$1
extra=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' |
        grep -v -E '^(icap_[a-z0-9_]+|ICAP_0)$' || true)
if [ -n "$extra" ]; then
  echo "FAIL: symbols outside icap_*:"; echo "$extra" | head -20; exit 1
fi
count=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | grep -c '^icap_')
[ "$count" -ge 50 ] || { echo "FAIL: only $count icap_* symbols exported"; exit 1; }
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "libicap.so.0" ] || { echo "FAIL: SONAME is '$soname'"; exit 1; }
echo "ok: $count icap_* symbols, SONAME $soname"
