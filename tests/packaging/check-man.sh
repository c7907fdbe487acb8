#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `cmake --install` installs icap-echo and the other example programs with a
# manual page each. Every page formats without a groff warning, and names
# every long option that the program's --help shows, and the other way round.
#
# usage: check-man.sh BUILD_DIR PROGRAM...
set -euo pipefail
build=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
fail=0
for prog in "$@"; do
  bin=$tmp/prefix/bin/$prog
  page=$(find "$tmp/prefix" -path "*/man1/$prog.1" | head -n 1)
  if [ ! -x "$bin" ]; then echo "FAIL: $prog is not installed in bin/"; fail=1; continue; fi
  if [ -z "$page" ]; then echo "FAIL: no manual page $prog.1"; fail=1; continue; fi
  warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1 || true)
  if [ -n "$warnings" ]; then echo "FAIL: groff warns on $prog.1: $warnings"; fail=1; fi
  help_opts=$(LD_LIBRARY_PATH=$(dirname "$(find "$tmp/prefix" -name libicap.so.0 | head -n 1)") \
              "$bin" --help | grep -o -- '--[a-z][a-z-]*' | sort -u)
  man_opts=$(sed 's/\\-/-/g' "$page" | grep -o -- '--[a-z][a-z-]*' | sort -u)
  # The usage line of the C++ examples shows -v, not --verbose, and none
  # shows --help: the page may document those two in addition.
  missing=$(comm -23 <(echo "$help_opts") <(echo "$man_opts"))
  extra=$(comm -13 <(echo "$help_opts") <(echo "$man_opts") | grep -v -x -e --help -e --verbose || true)
  if [ -n "$missing" ]; then echo "FAIL: $prog.1 lacks" $missing; fail=1; fi
  if [ -n "$extra" ]; then echo "FAIL: $prog.1 documents options --help does not show:" $extra; fail=1; fi
  [ "$fail" = 0 ] && echo "ok: $prog and $prog.1 (" $help_opts ")"
done
exit "$fail"
