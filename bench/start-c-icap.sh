#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# start-c-icap.sh PORT [THREADS]
#
# Runs c-icap 0.5.10 with its srv_echo module (service "echo") on
# 127.0.0.1:PORT with a private configuration tuned for benchmarking, in a
# mktemp directory.  Nothing under /etc or /var is read or written.
#
# c-icap serves every keep-alive connection with one thread of a pre-forked
# child, so THREADS (default 1100) bounds the number of concurrently served
# connections.  One child only (StartServers 1, MaxServers 1), unlimited
# keep-alive requests, no child recycling.
#
# The script stays in the foreground.  Once c-icap answers OPTIONS it prints
# one line on stdout:
#     READY pid=<c-icap main pid> port=<PORT> tmp=<temp dir>
# and then waits until c-icap exits, the script receives SIGTERM/SIGINT, or
# MAX_LIFETIME seconds (default 3600) have passed.  It then stops c-icap and
# its children by PID and removes the temp dir (KEEP_TMP=1 keeps it).
#
# Environment: C_ICAP_DEBUG=N (DebugLevel, default 0), MAX_LIFETIME=S,
#              KEEP_TMP=1, C_ICAP_TIMEOUT=S (Timeout/KeepAliveTimeout, 600)
set -uo pipefail

log() { printf '[start-c-icap] %s\n' "$*" >&2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

[ $# -ge 1 ] && [ $# -le 2 ] || usage
case "$1" in -h|--help) usage ;; esac
PORT=$1
THREADS=${2:-1100}
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || { log "invalid port: $PORT"; exit 2; }
[[ "$THREADS" =~ ^[0-9]+$ ]] && [ "$THREADS" -ge 1 ] && [ "$THREADS" -le 100000 ] || { log "invalid thread count: $THREADS"; exit 2; }
command -v c-icap >/dev/null 2>&1 || { log "c-icap not installed"; exit 3; }

# Many keep-alive connections need many descriptors: raise the soft limit to
# the hard limit (inherited by c-icap).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../tests/common/proc.sh
. "$HERE/../tests/common/proc.sh"
# shellcheck source=../tests/common/c-icap.sh
. "$HERE/../tests/common/c-icap.sh"
cicap_find_module || { log "srv_echo.so not found (dpkg -L c-icap)"; exit 3; }

TMP=$(mktemp -d -t c-icap-bench.XXXXXX) || exit 3
CICAP_PID=""
SLEEP_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    cicap_cleanup log
    exit "$rc"
}
exit_traps

if listening "$PORT"; then log "port $PORT already in use"; exit 4; fi

# One child with THREADS threads, unlimited keep-alive requests.
CICAP_TIMEOUT=${C_ICAP_TIMEOUT:-600} CICAP_KEEPALIVE_TIMEOUT=${C_ICAP_TIMEOUT:-600}
CICAP_MAX_KEEPALIVE=-1 CICAP_START_SERVERS=1 CICAP_MAX_SERVERS=1 CICAP_MIN_SPARE=0
CICAP_MAX_SPARE=$THREADS CICAP_THREADS=$THREADS CICAP_DEBUG=${C_ICAP_DEBUG:-0}
cicap_start "$TMP" "$PORT" 150 log || exit 5       # at most ~30 s
echo "READY pid=$CICAP_PID port=$PORT tmp=$TMP"
log "c-icap pid $CICAP_PID serving icap://127.0.0.1:$PORT/echo (ThreadsPerChild $THREADS, nofile $(ulimit -n))"

stay_while_alive "$CICAP_PID" c-icap log
exit 0
