#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The `docs` target's Doxygen configuration documents every function that
# icap.h declares, with the comment text from the header, and warns about
# nothing. Runs Doxygen into a temporary directory, not into the build's.
#
# usage: check-docs.sh DOXYGEN BUILD_DIR/Doxyfile SOURCE_DIR
set -euo pipefail
doxygen=$1 doxyfile=$2 src=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{ cat "$doxyfile"; echo "OUTPUT_DIRECTORY = $tmp"; echo "WARN_LOGFILE = $tmp/warnings.log"; } |
  "$doxygen" - >/dev/null
page=$tmp/html/icap_8h.html
test -f "$page" || { echo "FAIL: no page for icap.h"; exit 1; }
if [ -s "$tmp/warnings.log" ]; then echo "FAIL: Doxygen warnings:"; head -n 20 "$tmp/warnings.log"; exit 1; fi
# A comment the filter must have turned into documentation.
grep -q "Port 0 lets the kernel choose" "$page" ||
  { echo "FAIL: the comment of icap_server_listen is not in the reference"; exit 1; }
fns=$(grep -o '^ICAP_EXTERN [^(]*(' "$src/include/icap/icap.h" | sed 's/($//; s/.*[ *]//' | sort -u)
n=0
for f in $fns; do
  grep -q "id=\"[^\"]*\">.*$f\|>$f<" "$page" || { echo "FAIL: $f is not documented"; exit 1; }
  n=$((n + 1))
done
[ "$n" -ge 50 ] || { echo "FAIL: only $n functions found in icap.h"; exit 1; }
echo "ok: $n functions of icap.h in the API reference, no warnings"
