#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# start-c-icap-echo.sh PORT [-- COMMAND [ARGS...]]
#
# Runs the reference ICAP server (Debian's c-icap with its srv_echo module,
# exposed as service "echo") on 127.0.0.1:PORT with a private configuration
# in a temporary directory.  Nothing under /etc or /var is used or modified.
#
#   start-c-icap-echo.sh 11344
#       Start c-icap and stay in the foreground until interrupted
#       (Ctrl-C / SIGTERM); then stop c-icap and remove the temp dir.
#
#   start-c-icap-echo.sh 11344 -- ./squid-e2e.sh --icap 127.0.0.1:11344 \
#         --reqmod echo --respmod echo
#       Start c-icap, wait until it answers, run the command, stop c-icap
#       and exit with the command's exit status.
#
# Environment:
#   C_ICAP_DEBUG=N   c-icap DebugLevel (default 1)
#   KEEP_TMP=1       keep the temp dir (config + logs) and print its path
#   MAX_LIFETIME=S   foreground mode stops by itself after S seconds
#                    (default 3600)
#   C_ICAP_MAX_KEEPALIVE_REQUESTS=N
#                    requests per persistent connection (default 100, the
#                    c-icap default; 1 makes c-icap close every connection,
#                    a negative control for squid-e2e.sh's icap-conn-reuse)
#
# Exit status: with -- COMMAND, the command's.  In foreground mode 130 after
# SIGINT, 143 after SIGTERM (c-icap stopped cleanly in both cases), 0 when
# MAX_LIFETIME is reached, 1 if c-icap exited on its own.  Otherwise 2 usage
# error, 3 setup error, 4 PORT already in use, 5 c-icap did not come up,
# 77 (ctest's SKIP code) if c-icap, c-icap-client, ss, pgrep or dpkg is
# missing (nothing is installed automatically).
#
# Note: a non-interactive shell starts background commands with SIGINT
# ignored, and bash cannot trap a signal that was ignored on entry; so when
# this script is started with "&" from another script, only SIGTERM stops it
# unless the parent resets SIGINT (with-server.sh does, with
# "env --default-signal=INT").
#
# Every process started here is stopped by PID from an EXIT trap, also when
# the command fails or the script is interrupted.
set -uo pipefail

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

log() { printf '[c-icap-echo] %s\n' "$*" >&2; }

[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
PORT=$1; shift
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || {
    log "invalid port: $PORT"; exit 2; }
CMD=()
if [ $# -gt 0 ]; then
    [ "$1" = "--" ] || usage
    shift
    [ $# -gt 0 ] || usage
    CMD=("$@")
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common/proc.sh
. "$HERE/../common/proc.sh"
# shellcheck source=../common/c-icap.sh
. "$HERE/../common/c-icap.sh"

# --------------------------------------------------------------- programs ---
# Never install anything from here (CI installs packages itself): a missing
# program makes this script exit 77, ctest's SKIP code, with a clear message.
require_progs log c-icap:c-icap c-icap-client:c-icap ss:iproute2 pgrep:procps dpkg:dpkg

# ------------------------------------------------------------ temp + trap ---
TMP=$(mktemp -d -t c-icap-echo.XXXXXX) || exit 3
CICAP_PID=""
CMD_PID=""
SLEEP_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    [ -n "$CMD_PID" ] && stop_pid "$CMD_PID" 30     # give it time to clean up
    cicap_cleanup log
    exit "$rc"
}
exit_traps

# ---------------------------------------------------------------- config ---
if listening "$PORT"; then
    log "port $PORT is already in use on this machine"; exit 4
fi
cicap_find_module || { log "srv_echo.so not found (dpkg -L c-icap)"; exit 3; }

# ----------------------------------------------------------------- start ---
CICAP_TIMEOUT=300 CICAP_KEEPALIVE_TIMEOUT=600
CICAP_MAX_KEEPALIVE=${C_ICAP_MAX_KEEPALIVE_REQUESTS:-100}
CICAP_START_SERVERS=3 CICAP_MAX_SERVERS=10 CICAP_MIN_SPARE=10 CICAP_MAX_SPARE=20
CICAP_THREADS=10 CICAP_DEBUG=${C_ICAP_DEBUG:-1}
cicap_start "$TMP" "$PORT" 100 log || exit 5       # at most ~20 s
log "c-icap (pid $CICAP_PID) serving icap://127.0.0.1:$PORT/echo; temp dir $TMP"

if [ ${#CMD[@]} -gt 0 ]; then
    # Run in the background and wait, so that a SIGTERM/SIGINT sent to this
    # script is handled at once (the trap then stops the command and c-icap).
    "${CMD[@]}" &
    CMD_PID=$!
    wait "$CMD_PID"
    rc=$?
    CMD_PID=""
    kill -0 "$CICAP_PID" 2>/dev/null || log "WARNING: c-icap died while the command ran"
    exit "$rc"
fi

MAX_LIFETIME=${MAX_LIFETIME:-3600}
log "press Ctrl-C (or send SIGTERM to $$) to stop; stops by itself after ${MAX_LIFETIME}s"
# Foreground mode: stay here until c-icap exits, we are signalled, or the
# lifetime bound is reached.
stay_while_alive "$CICAP_PID" c-icap log
exit 0
