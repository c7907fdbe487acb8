# SPDX-License-Identifier: MIT
# Process helpers shared by the test and benchmark scripts (sourced, bash):
# stopping what a script started, by PID and within a bounded time, the
# usual exit traps, the check for missing programs, and a port probe.
# Nothing here kills by name: every function takes the PID it stops.

# stop_pid PID [GRACE]: SIGTERM, wait up to GRACE seconds (default 10),
# then SIGKILL; reaps it when it is our child.
stop_pid() {
    local pid=$1 grace=${2:-10} i
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for i in $(seq 1 $((grace * 5))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

# stop_tree PID [GRACE]: stop_pid, then SIGKILL the children PID had when
# this was called (c-icap forks workers, and a worker must not outlive it).
stop_tree() {
    local pid=$1 kids k
    [ -n "$pid" ] || return 0
    kids=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ')
    stop_pid "$pid" "${2:-10}"
    for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null; done
    return 0
}

# exit_traps [LOGFN]: run `cleanup` on exit, and exit with the usual status
# on SIGINT (130), SIGTERM (143) and SIGHUP (129), so that cleanup runs then
# too; LOGFN, when given, says "interrupted" or "terminated" first.
exit_traps() {
    local say=${1:-:}
    trap cleanup EXIT
    trap "$say interrupted; exit 130" INT
    trap "$say terminated; exit 143" TERM
    trap 'exit 129' HUP
}

# run_bg CMD...: runs a command in the background and waits for it, so that
# signals are handled at once (bash defers traps while a foreground child
# runs); BG_PID is what cleanup must stop meanwhile.
run_bg() {
    "$@" &
    BG_PID=$!
    wait "$BG_PID"
    local rc=$?
    BG_PID=""
    return $rc
}

# free_port: a port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# require_progs LOGFN PROG:PACKAGE...: a test never installs packages behind
# the user's back (CI installs them itself), so a missing program makes the
# script exit 77, which ctest reports as SKIPPED (SKIP_RETURN_CODE 77).
require_progs() {
    local say=$1 missing=() c
    shift
    for c in "$@"; do
        command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c%%:*} (Debian package ${c#*:})")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    "$say" "SKIP: required program(s) missing: ${missing[*]}"
    exit 77
}

# listening PORT: true if something listens on 127.0.0.1:PORT (or any
# address with that port).
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# stay_while_alive PID NAME LOGFN: returns after MAX_LIFETIME seconds
# (default 3600); exits 1 if PID dies first. Sleeps in the background and
# waits, so that a signal to the script is handled at once (SLEEP_PID is
# what cleanup must stop).
stay_while_alive() {
    local pid=$1 name=$2 say=$3 _
    for _ in $(seq 1 "${MAX_LIFETIME:-3600}"); do
        kill -0 "$pid" 2>/dev/null || { "$say" "$name exited on its own"; exit 1; }
        sleep 1 &
        SLEEP_PID=$!
        wait "$SLEEP_PID" 2>/dev/null
        SLEEP_PID=""
    done
    "$say" "lifetime of ${MAX_LIFETIME:-3600}s reached; stopping"
}
