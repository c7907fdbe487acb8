#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# smoke.sh ICAP_BENCH PORT [SERVICE [relay]]
#
# Short functional run of icap-bench against an ICAP echo service on
# 127.0.0.1:PORT (default service "echo"): every scenario for a few hundred
# requests at 1 and 8 connections, echoes with 4 KiB and 1 MiB request chunks
# (--chunk), a short --sweep, plus 200 idle keep-alive connections.  With a
# fourth argument "relay" the server is bench/icap-relay, which has no
# preview support, so the preview scenarios are left out.
# Exit 0 only if every run reports no error and no invalid response.
# Used by the ctest test bench.smoke (bench/CMakeLists.txt) through
# tests/interop/with-server.sh, which starts the server on PORT.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ICAP_BENCH PORT [SERVICE]" >&2; exit 2; }
BENCH=$1 PORT=$2 SERVICE=${3:-echo} PEER=${4:-}
fail=0
scens="options respmod204 reqmod204 echo:1024 echo:65536 echo:1048576"
[ "$PEER" = relay ] || scens="$scens preview:4096:1024 preview:512:1024 preview:100000:0"
# run NAME ARGS...: one icap-bench run that must report no error.
run() {
    local name=$1 out; shift
    if out=$("$BENCH" --host 127.0.0.1 --port "$PORT" --service "$SERVICE" "$@" 2>&1); then
        echo "PASS $name: $(printf '%s\n' "$out" | grep -m1 'completed' | sed 's/^ *//')"
    else
        echo "FAIL $name"; printf '%s\n' "$out" | sed 's/^/    /'
        fail=1
    fi
}
for chunk in 4K 1M; do
    run "echo:1048576 --chunk $chunk x4" --scenario echo:1048576 --chunk "$chunk" \
        --connections 4 --requests 40 --timeout 10 --max-time 60 --verbose 3
    run "echo:3000000 --chunk $chunk x2" --scenario echo:3000000 --chunk "$chunk" \
        --connections 2 --requests 10 --timeout 10 --max-time 60 --verbose 3
done
# The sweep exits non-zero if any point had an error; its timings are not checked.
run "sweep" --sweep --duration 0.3 --sweep-connections 1,4 --sweep-chunks 16K,1M \
    --sweep-bodies 1K,64K --timeout 10 --verbose 3
for scen in $scens; do
    n=300
    case "$scen" in echo:1048576) n=40 ;; esac
    for conns in 1 8; do
        if out=$("$BENCH" --host 127.0.0.1 --port "$PORT" --service "$SERVICE" --scenario "$scen" \
                  --connections "$conns" --requests "$n" --timeout 10 --max-time 60 --verbose 3 2>&1); then
            echo "PASS $scen x$conns: $(printf '%s\n' "$out" | grep -m1 'completed' | sed 's/^ *//')"
        else
            echo "FAIL $scen x$conns"; printf '%s\n' "$out" | sed 's/^/    /'
            fail=1
        fi
    done
done
if out=$("$BENCH" --host 127.0.0.1 --port "$PORT" --service "$SERVICE" --idle 200 --hold 1 --timeout 10 2>&1); then
    echo "PASS idle x200"
else
    echo "FAIL idle x200"; printf '%s\n' "$out" | sed 's/^/    /'
    fail=1
fi
exit "$fail"
