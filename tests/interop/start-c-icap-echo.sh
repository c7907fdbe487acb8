#!/usr/bin/env bash
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

# --------------------------------------------------------------- programs ---
# Never install anything from here (CI installs packages itself): a missing
# program makes this script exit 77, ctest's SKIP code, with a clear message.
require_progs() {
    local missing=() c
    for c in c-icap:c-icap c-icap-client:c-icap ss:iproute2 pgrep:procps dpkg:dpkg; do
        command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c%%:*} (Debian package ${c#*:})")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "SKIP: required program(s) missing: ${missing[*]}"
    exit 77
}
require_progs

# ------------------------------------------------------------ temp + trap ---
TMP=$(mktemp -d -t c-icap-echo.XXXXXX) || exit 3
CICAP_PID=""
CMD_PID=""
SLEEP_PID=""

stop_pid() {   # stop_pid PID [SECONDS]: TERM, wait (default ~10 s), then KILL
    local pid=$1 grace=${2:-10} i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 $((grace * 5))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

stop_cicap() {
    [ -n "$CICAP_PID" ] || return 0
    local kids i
    kids=$(pgrep -P "$CICAP_PID" 2>/dev/null | tr '\n' ' ')
    stop_pid "$CICAP_PID"
    # c-icap forks worker children; make sure the ones we saw are gone too.
    for i in $kids; do
        kill -0 "$i" 2>/dev/null && kill -KILL "$i" 2>/dev/null
    done
    CICAP_PID=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    [ -n "$SLEEP_PID" ] && { kill "$SLEEP_PID" 2>/dev/null; wait "$SLEEP_PID" 2>/dev/null; }
    [ -n "$CMD_PID" ] && stop_pid "$CMD_PID" 30     # give it time to clean up
    stop_cicap
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- config ---
listening() { ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; }
if listening; then
    log "port $PORT is already in use on this machine"; exit 4
fi

# Locate the echo module and magic file from the package contents instead of
# hard-coding multiarch paths.
ECHO_SO=$(dpkg -L c-icap 2>/dev/null | grep '/srv_echo\.so$' | head -n1)
MAGIC=$(dpkg -L c-icap 2>/dev/null | grep '/c-icap\.magic$' | head -n1)
[ -n "$ECHO_SO" ] && [ -f "$ECHO_SO" ] || { log "srv_echo.so not found (dpkg -L c-icap)"; exit 3; }
MODDIR=$(dirname "$ECHO_SO")

mkdir -p "$TMP/log" "$TMP/run" "$TMP/tmp"
{
    echo "# generated by start-c-icap-echo.sh"
    echo "PidFile $TMP/run/c-icap.pid"
    echo "CommandsSocket $TMP/run/c-icap.ctl"
    echo "Port 127.0.0.1:$PORT"
    # As root, c-icap would switch to the User/Group given here; keep the
    # invoking user so it can write to the temp dir.  As non-root it cannot
    # switch at all (setgroups fails), so say nothing.
    if [ "$(id -u)" -eq 0 ]; then
        echo "User $(id -un)"
        echo "Group $(id -gn)"
    fi
    echo "Timeout 300"
    echo "MaxKeepAliveRequests ${C_ICAP_MAX_KEEPALIVE_REQUESTS:-100}"
    echo "KeepAliveTimeout 600"
    echo "StartServers 3"
    echo "MaxServers 10"
    echo "MinSpareThreads 10"
    echo "MaxSpareThreads 20"
    echo "ThreadsPerChild 10"
    echo "MaxRequestsPerChild 0"
    echo "TmpDir $TMP/tmp"
    echo "MaxMemObject 131072"
    echo "DebugLevel ${C_ICAP_DEBUG:-1}"
    echo "Pipelining on"
    echo "SupportBuggyClients off"
    echo "ModulesDir $MODDIR"
    echo "ServicesDir $MODDIR"
    [ -n "$MAGIC" ] && [ -f "$MAGIC" ] && echo "LoadMagicFile $MAGIC"
    echo "ServerLog $TMP/log/server.log"
    echo "AccessLog $TMP/log/access.log"
    echo "Service echo srv_echo.so"
} > "$TMP/c-icap.conf"

# ----------------------------------------------------------------- start ---
c-icap -N -f "$TMP/c-icap.conf" >"$TMP/log/stdout.log" 2>&1 &
CICAP_PID=$!

ready=0
for _ in $(seq 1 100); do                  # at most ~20 s
    if ! kill -0 "$CICAP_PID" 2>/dev/null; then break; fi
    if listening && c-icap-client -i 127.0.0.1 -p "$PORT" -s echo \
            >/dev/null 2>&1 </dev/null; then
        ready=1; break
    fi
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    log "c-icap did not come up on 127.0.0.1:$PORT; its logs:"
    tail -n 30 "$TMP/log/stdout.log" "$TMP/log/server.log" >&2 2>/dev/null
    exit 5
fi
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
for _ in $(seq 1 "$MAX_LIFETIME"); do
    kill -0 "$CICAP_PID" 2>/dev/null || { log "c-icap exited on its own"; exit 1; }
    sleep 1 &
    SLEEP_PID=$!
    wait "$SLEEP_PID" 2>/dev/null
    SLEEP_PID=""
done
log "lifetime of ${MAX_LIFETIME}s reached; stopping"
exit 0
