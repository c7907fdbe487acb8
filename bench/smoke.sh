#!/usr/bin/env bash
# smoke.sh ICAP_BENCH PORT [SERVICE]
#
# Short functional run of icap-bench against an ICAP echo service on
# 127.0.0.1:PORT (default service "echo"): every scenario for a few hundred
# requests at 1 and 8 connections, plus 200 idle keep-alive connections.
# Exit 0 only if every run reports no error and no invalid response.
# Used by the ctest test bench.smoke (bench/CMakeLists.txt) through
# tests/interop/with-server.sh, which starts the server on PORT.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ICAP_BENCH PORT [SERVICE]" >&2; exit 2; }
BENCH=$1 PORT=$2 SERVICE=${3:-echo}
fail=0
for scen in options respmod204 reqmod204 echo:1024 echo:65536 echo:1048576 \
            preview:4096:1024 preview:512:1024 preview:100000:0; do
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
