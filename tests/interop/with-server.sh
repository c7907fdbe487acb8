#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# with-server.sh - run a check command against a server on a free loopback port.
#
# usage: with-server.sh [options] -- SERVER_CMD [ARGS...] -- CHECK_CMD [ARGS...]
#
# Picks a free TCP port on 127.0.0.1 (the kernel chooses it: python3 binds
# 127.0.0.1:0), replaces the literal token @PORT@ in every argument of both
# commands (also inside a word, e.g. 127.0.0.1:@PORT@), starts SERVER_CMD in
# the background, waits until 127.0.0.1:PORT accepts TCP connections, runs
# CHECK_CMD, then stops the server by PID: SIGINT, then SIGTERM, then SIGKILL,
# each after a bounded wait.  Both commands also get WITH_SERVER_PORT=PORT in
# their environment.
#
# options:
#   --ready-timeout S   how long the server may take to listen (default 20)
#   --check-timeout S   limit for CHECK_CMD (default 3600; 0 = none); when it
#                       is reached the check gets SIGTERM, 10 s later SIGKILL
#   --stop-timeout S    wait after SIGINT before SIGTERM (default 10); after
#                       SIGTERM and after SIGKILL the wait is 5 s each
#   --attempts N        start attempts if the server exits before it listens,
#                       each on a new port: guards against another process
#                       taking the port in between (default 3)
#   --server-log FILE   append the server's stdout+stderr to FILE instead of
#                       copying them to stderr with a "[server] " prefix
#   -h, --help
#
# The first "--" after SERVER_CMD ends it, so SERVER_CMD cannot itself
# contain a "--" argument (wrap it in `bash -c '...'` if it must).
#
# Exit status:
#   the check's exit status (so 77, ctest's SKIP code, passes through), unless
#   3   the server exited before it listened, or did not listen within
#       --ready-timeout (77 instead if the server itself exited with 77)
#   4   the check passed (or was skipped) but the server crashed: it exited
#       while the check ran (whatever its status), or after our SIGINT its
#       status shows death by a signal we did not send (SIGSEGV, SIGABRT, ...
#       i.e. a status >= 128 other than 128+INT/TERM/KILL of our own); a
#       non-zero status < 128 after SIGINT is only reported, not a failure
#   124 the check ran into --check-timeout
#   2   usage error; 77 if python3 or timeout is missing
#   129/130/143 if this script got SIGHUP/SIGINT/SIGTERM (everything it
#       started is stopped first)
# If the server crashed and the check failed too, the check's (non-zero)
# status is kept and the crash is reported on stderr.
set -uo pipefail

say() { printf '[with-server] %s\n' "$*" >&2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit "${1:-2}"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# ------------------------------------------------------------------ args ---
READY_TIMEOUT=20; CHECK_TIMEOUT=3600; STOP_TIMEOUT=10; ATTEMPTS=3; SERVER_LOG=""
while [ $# -gt 0 ]; do
    case "$1" in
        --ready-timeout) [ $# -ge 2 ] || usage; READY_TIMEOUT=$2; shift 2 ;;
        --check-timeout) [ $# -ge 2 ] || usage; CHECK_TIMEOUT=$2; shift 2 ;;
        --stop-timeout)  [ $# -ge 2 ] || usage; STOP_TIMEOUT=$2; shift 2 ;;
        --attempts)      [ $# -ge 2 ] || usage; ATTEMPTS=$2; shift 2 ;;
        --server-log)    [ $# -ge 2 ] || usage; SERVER_LOG=$2; shift 2 ;;
        -h|--help)       usage 0 ;;
        --)              shift; break ;;
        *)               say "unknown option: $1"; usage ;;
    esac
done
for v in "$READY_TIMEOUT" "$CHECK_TIMEOUT" "$STOP_TIMEOUT" "$ATTEMPTS"; do
    is_uint "$v" || { say "not a non-negative integer: $v"; usage; }
done
[ "$READY_TIMEOUT" -ge 1 ] && [ "$ATTEMPTS" -ge 1 ] || { say "--ready-timeout and --attempts must be >= 1"; usage; }

SERVER_TPL=(); CHECK_TPL=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do SERVER_TPL+=("$1"); shift; done
[ $# -gt 0 ] || { say "missing '--' between SERVER_CMD and CHECK_CMD"; usage; }
shift
CHECK_TPL=("$@")
[ ${#SERVER_TPL[@]} -gt 0 ] || { say "SERVER_CMD is empty"; usage; }
[ ${#CHECK_TPL[@]} -gt 0 ] || { say "CHECK_CMD is empty"; usage; }

# -------------------------------------------------------------- programs ---
# Nothing is installed from here: a missing program means "skip" (77).
for c in python3 timeout; do
    command -v "$c" >/dev/null 2>&1 || { say "SKIP: required program '$c' is missing"; exit 77; }
done

# A non-interactive shell starts "&" commands with SIGINT ignored, and a
# process that inherits an ignored SIGINT often cannot be stopped by it (bash
# cannot trap it, Python installs no KeyboardInterrupt handler).  Start the
# server through something that resets SIGINT to its default first, so that
# "stop with SIGINT" really tests the server's SIGINT handling.
if env --default-signal=INT true 2>/dev/null; then
    SIGRESET=(env --default-signal=INT)
else   # coreutils < 8.31
    SIGRESET=(python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])')
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# port_open: does 127.0.0.1:$PORT accept a TCP connection?  (bash's
# /dev/tcp connects and the subshell closes it at once; `timeout` bounds the
# rare case of a full accept backlog, where connect() would hang.)
port_open() {
    timeout -k 1 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$PORT" 2>/dev/null
}

alive() { kill -0 "$1" 2>/dev/null; }
quote() { local q; printf -v q '%q ' "$@"; printf '%s' "${q% }"; }  # for messages

# describe_status RC: "status N", or "status N = 128+SIGxxx" for a death by a
# signal (bash cannot tell that from a plain exit with the same number)
describe_status() {
    if [ "$1" -ge 129 ] && [ "$1" -lt 192 ]; then
        printf 'status %s = 128+SIG%s' "$1" "$(kill -l $(( $1 - 128 )) 2>/dev/null || echo "?")"
    else
        printf 'status %s' "$1"
    fi
}

# ------------------------------------------------------------ state + trap ---
SERVER_PID=""; CHECK_PID=""; LOG_PID=""; LOGFD=""
SERVER_RC=""          # exit status of the server once reaped
SENT_SIGNALS=" "      # signals we sent to the server, e.g. " INT TERM "
PORT=""

# stop_server: SIGINT, bounded wait, SIGTERM, bounded wait, SIGKILL, bounded
# wait.  Sets SERVER_RC (empty if the process could not be reaped at all).
wait_gone() {  # wait_gone PID SECONDS: poll until PID is gone, at most SECONDS
    local _
    for _ in $(seq 1 $(( $2 * 10 ))); do alive "$1" || return 0; sleep 0.1; done
    ! alive "$1"
}
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if alive "$SERVER_PID"; then
        kill -INT "$SERVER_PID" 2>/dev/null; SENT_SIGNALS+="INT "
        if ! wait_gone "$SERVER_PID" "$STOP_TIMEOUT"; then
            say "warning: server (pid $SERVER_PID) still running ${STOP_TIMEOUT}s after SIGINT; sending SIGTERM"
            kill -TERM "$SERVER_PID" 2>/dev/null; SENT_SIGNALS+="TERM "
            if ! wait_gone "$SERVER_PID" 5; then
                say "warning: server still running 5s after SIGTERM; sending SIGKILL"
                kill -KILL "$SERVER_PID" 2>/dev/null; SENT_SIGNALS+="KILL "
                wait_gone "$SERVER_PID" 5 || {
                    say "error: server pid $SERVER_PID survived SIGKILL (uninterruptible?); giving up on it"
                    SERVER_PID=""; SERVER_RC=""; return 1
                }
            fi
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null
    SERVER_RC=$?
    SERVER_PID=""
}

# stop_check: the check scripts clean up (Squid, origin, temp dirs) on
# SIGTERM, so give them time before SIGKILL.
stop_check() {
    [ -n "$CHECK_PID" ] || return 0
    if alive "$CHECK_PID"; then
        kill -TERM "$CHECK_PID" 2>/dev/null
        wait_gone "$CHECK_PID" 20 || kill -KILL "$CHECK_PID" 2>/dev/null
    fi
    wait "$CHECK_PID" 2>/dev/null
    CHECK_PID=""
}

# close the "[server] " prefixer: it ends when the last writer closes the
# pipe; do not wait long for it (an orphaned server child could hold it)
close_log() {
    [ -n "$LOGFD" ] || return 0
    exec {LOGFD}>&-
    LOGFD=""
    if [ -n "$LOG_PID" ]; then
        wait_gone "$LOG_PID" 2 || kill -TERM "$LOG_PID" 2>/dev/null
        LOG_PID=""
    fi
}

on_exit() {   # also runs after errors and signals: stop whatever still runs
    local rc=$?
    trap - EXIT INT TERM HUP
    stop_check
    stop_server
    close_log
    exit "$rc"
}
trap on_exit EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
trap 'exit 129' HUP

# ------------------------------------------------------------ server log ---
if [ -z "$SERVER_LOG" ]; then
    # The prefixer is our own child (not the server's), so no server sees an
    # unexpected child process.  It writes to our stderr.
    exec {LOGFD}> >(exec sed -u 's/^/[server] /' >&2)
    LOG_PID=$!
else
    exec {LOGFD}>>"$SERVER_LOG" || { say "cannot write $SERVER_LOG"; exit 2; }
fi

# --------------------------------------------------------- start server ---
T0=$(now_ms)
ready=0
for attempt in $(seq 1 "$ATTEMPTS"); do
    PORT=$(free_port) && is_uint "$PORT" || { say "could not pick a free port with python3"; exit 3; }
    export WITH_SERVER_PORT=$PORT
    SERVER=(); CHECK=()
    for a in "${SERVER_TPL[@]}"; do SERVER+=("${a//@PORT@/$PORT}"); done
    for a in "${CHECK_TPL[@]}"; do CHECK+=("${a//@PORT@/$PORT}"); done

    say "starting server on 127.0.0.1:$PORT: $(quote "${SERVER[@]}")"
    "${SIGRESET[@]}" "${SERVER[@]}" </dev/null >&"$LOGFD" 2>&1 &
    SERVER_PID=$!
    SENT_SIGNALS=" "

    deadline=$(( $(now_ms) + READY_TIMEOUT * 1000 ))
    while :; do        # bounded by the deadline (and by the server exiting)
        if ! alive "$SERVER_PID"; then break; fi
        if port_open; then
            # Something listens; make sure it is not a leftover that was
            # there while our server died.
            alive "$SERVER_PID" && ready=1
            break
        fi
        [ "$(now_ms)" -lt "$deadline" ] || break
        sleep 0.1
    done
    [ "$ready" = 1 ] && break

    if alive "$SERVER_PID"; then
        say "FAIL: server did not accept connections on 127.0.0.1:$PORT within ${READY_TIMEOUT}s"
        stop_server
        exit 3
    fi
    wait "$SERVER_PID" 2>/dev/null
    rc=$?
    SERVER_PID=""
    if [ "$rc" -eq 77 ]; then
        say "SKIP: the server exited with 77 (skip) before listening"
        exit 77
    fi
    if [ "$attempt" -lt "$ATTEMPTS" ] && [ "$rc" -ne 126 ] && [ "$rc" -ne 127 ]; then
        # 126/127: not executable / not found; another port will not help
        say "server exited ($(describe_status "$rc")) before listening on port $PORT; retrying on another port"
        continue
    fi
    say "FAIL: server exited ($(describe_status "$rc")) before listening on 127.0.0.1:$PORT (attempt $attempt of $ATTEMPTS)"
    exit 3
done
say "server (pid $SERVER_PID) accepts connections on 127.0.0.1:$PORT after $(( $(now_ms) - T0 )) ms"

# ------------------------------------------------------------ run check ---
say "running check: $(quote "${CHECK[@]}")"
# In the background + wait, so that our signal traps run at once (bash
# defers traps while a foreground child runs).
if [ "$CHECK_TIMEOUT" -gt 0 ]; then
    timeout -k 10 "$CHECK_TIMEOUT" "${CHECK[@]}" &
else
    "${CHECK[@]}" &
fi
CHECK_PID=$!
wait "$CHECK_PID"
CHECK_RC=$?
CHECK_PID=""
T_CHECK=$(( $(now_ms) - T0 ))
if [ "$CHECK_TIMEOUT" -gt 0 ] && { [ "$CHECK_RC" -eq 124 ] || [ "$CHECK_RC" -eq 137 ]; }; then
    say "FAIL: check did not finish within --check-timeout ${CHECK_TIMEOUT}s (status $CHECK_RC)"
    CHECK_RC=124
fi

# ------------------------------------------------- stop server + verdict ---
SERVER_PROBLEM=""
if ! alive "$SERVER_PID"; then
    wait "$SERVER_PID" 2>/dev/null
    rc=$?
    SERVER_PID=""
    SERVER_PROBLEM="server exited while the check ran ($(describe_status "$rc"))"
else
    t_stop=$(now_ms)
    stop_server
    [ -n "$SERVER_RC" ] && say "server stopped ($(describe_status "$SERVER_RC")) $(( $(now_ms) - t_stop )) ms after SIGINT"
    if [ -z "$SERVER_RC" ]; then
        SERVER_PROBLEM="server could not be stopped"
    elif [ "$SERVER_RC" -ge 128 ]; then
        sig=$(kill -l $(( SERVER_RC - 128 )) 2>/dev/null || echo "?")
        if [[ "$SENT_SIGNALS" == *" $sig "* ]]; then
            case "$sig" in
                INT) ;;   # terminated by our SIGINT (or mimics it, status 130): fine
                *) say "note: server ended by our SIG$sig, it did not stop on SIGINT within ${STOP_TIMEOUT}s" ;;
            esac
        else
            SERVER_PROBLEM="server crashed: $(describe_status "$SERVER_RC") after SIGINT"
        fi
    elif [ "$SERVER_RC" -ne 0 ]; then
        say "note: server exited with status $SERVER_RC after SIGINT (not counted as a failure)"
    fi
fi
# A child the server forked and did not stop would keep the port (and leak).
if port_open; then
    say "warning: 127.0.0.1:$PORT still accepts connections after the server stopped (leftover child process?)"
fi
close_log

say "check exit status $CHECK_RC; total $(( T_CHECK / 1000 )).$(( T_CHECK % 1000 / 100 ))s (server start + check)"
if [ -n "$SERVER_PROBLEM" ]; then
    say "FAIL: $SERVER_PROBLEM"
    if [ "$CHECK_RC" -eq 0 ] || [ "$CHECK_RC" -eq 77 ]; then
        exit 4
    fi
fi
exit "$CHECK_RC"
