# squid-lib.sh - what the Squid tests share (sourced, not run): finding
# squid, an unprivileged user for it, the base of a test squid.conf, starting
# and stopping Squid and the origin server (origin-server.py), on loopback
# ports the kernel picks. Used by squid-e2e.sh and tests/deploy/squid-set.sh.
#
# The caller sets TMP (its temp dir), SQD (Squid's dir inside it), defines
# die, info and write_squid_conf HTTP_PORT (which writes $SQD/squid.conf,
# usually squid_base_conf HTTP_PORT plus its ICAP lines), and keeps
# SQUID_PID and ORIGIN_PID for its cleanup (stop_squid, stop_pid).
SQUID_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# squid lives in an sbin directory, which an ordinary user's PATH may lack;
# then ask dpkg where the package put it.
find_squid() {
    SQUID_BIN=$(command -v squid 2>/dev/null) ||
        SQUID_BIN=$(dpkg -L squid 2>/dev/null | grep -m1 '/sbin/squid$')
    [ -n "$SQUID_BIN" ] && [ -x "$SQUID_BIN" ]
}

stop_pid() {  # stop_pid PID [grace-seconds]: TERM, bounded wait, then KILL
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

stop_squid() {
    [ -n "$SQUID_PID" ] || return 0
    # squid -N has no kids in this config, but stop any it might have spawned.
    local kids k
    kids=$(pgrep -P "$SQUID_PID" 2>/dev/null | tr '\n' ' ')
    stop_pid "$SQUID_PID" 15
    for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null; done
    SQUID_PID=""
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# squid_pick_user: Squid refuses to run as root; SQUID_USER is the user it
# switches to (empty when not root).
squid_pick_user() {
    SQUID_USER=""
    if [ "$(id -u)" -eq 0 ]; then
        # Squid refuses to keep root privileges; it switches to this user.
        for u in proxy nobody; do id "$u" >/dev/null 2>&1 && { SQUID_USER=$u; break; }; done
        [ -n "$SQUID_USER" ] || die "no unprivileged user (proxy/nobody) for squid"
    fi
}

# squid_base_conf HTTP_PORT: the squid.conf lines every test shares (logs in
# $SQD, no cache, no DNS, ICAP on with persistent connections). PREVIEW_ENABLE,
# PREVIEW and CURL_TIMEOUT may be set by the caller.
squid_base_conf() {
    local PREVIEW_ENABLE=${PREVIEW_ENABLE:-on} PREVIEW=${PREVIEW:-1024} CURL_TIMEOUT=${CURL_TIMEOUT:-60}
    echo "http_port 127.0.0.1:$1"
    echo "visible_hostname squid-e2e"
    [ -n "$SQUID_USER" ] && echo "cache_effective_user $SQUID_USER"
    echo "pid_filename $SQD/squid.pid"
    echo "cache_log $SQD/cache.log"
    echo "coredump_dir $SQD"
    echo "logfile_rotate 0"
    echo "strip_query_terms off"
    echo "access_log stdio:$SQD/access.log squid"
    echo "cache deny all"
    echo "cache_mem 8 MB"
    echo "max_filedescriptors 4096"
    echo "shutdown_lifetime 0 seconds"
    # 93,3 (ICAP client) records OPTIONS results and every new ICAP
    # connection; the checks below rely on those lines.
    echo "debug_options ALL,1 93,3"
    echo "pinger_enable off"
    echo "netdb_filename none"
    echo "dns_nameservers 127.0.0.1"
    echo "http_access allow localhost"
    echo "http_access deny all"
    echo "icap_enable on"
    echo "icap_persistent_connections on"
    echo "icap_preview_enable $PREVIEW_ENABLE"
    echo "icap_preview_size $PREVIEW"
    echo "icap_send_client_ip on"
    echo "icap_connect_timeout 10 seconds"
    # shorter than curl's limit, so a stalled ICAP server shows up as
    # HTTP 500 ERR_ICAP_FAILURE rather than as a curl timeout
    echo "icap_io_timeout $(( CURL_TIMEOUT / 2 > 5 ? CURL_TIMEOUT / 2 : 5 )) seconds"
}

print_squid_tails() {
    say "---- tail of squid cache.log (AsyncCall bookkeeping lines left out) ----"
    grep -Ev 'AsyncCall(Queue)?\.cc|AsyncJob\.cc\([0-9]+\) call(Start|End)' "$SQD/cache.log" 2>/dev/null |
        tail -n 40 | cut -c1-300 | sed 's/^/  | /' >&2
    say "---- tail of squid icap.log ----"
    tail -n 12 "$SQD/icap.log" 2>/dev/null | sed 's/^/  | /' >&2
}

start_squid() {
    local attempt port i
    [ -n "$SQUID_USER" ] && chmod 755 "$TMP"
    for attempt in 1 2 3; do
        port=$(free_port)
        write_squid_conf "$port"
        if ! "$SQUID_BIN" -k parse -f "$SQD/squid.conf" >"$SQD/parse.out" 2>&1; then
            sed 's/^/  | /' "$SQD/parse.out" >&2
            return 1
        fi
        [ -n "$SQUID_USER" ] && chown -R "$SQUID_USER" "$SQD"
        : > "$SQD/cache.log"; [ -n "$SQUID_USER" ] && chown "$SQUID_USER" "$SQD/cache.log"
        "$SQUID_BIN" -N -f "$SQD/squid.conf" >"$SQD/squid.out" 2>&1 &
        SQUID_PID=$!
        for i in $(seq 1 150); do     # at most ~30 s
            kill -0 "$SQUID_PID" 2>/dev/null || break
            if ss -Hltnp "sport = :$port" 2>/dev/null | grep -q "pid=$SQUID_PID,"; then
                SQUID_PORT=$port
                return 0
            fi
            grep -q 'Address already in use' "$SQD/cache.log" "$SQD/squid.out" 2>/dev/null && break
            sleep 0.2
        done
        if grep -q 'Address already in use' "$SQD/cache.log" "$SQD/squid.out" 2>/dev/null; then
            info "port $port taken, retrying"
            stop_squid
            continue
        fi
        stop_squid
        return 1
    done
    return 1
}

# start_origin FILES_DIR: origin-server.py on a free port; sets ORIGIN_PID,
# ORIGIN_PORT and ORIGIN (its URL); its request log is $TMP/origin.log.
start_origin() {
    python3 "$SQUID_LIB_DIR/origin-server.py" --dir "$1" --port-file "$TMP/origin.port" \
        --log "$TMP/origin.log" --max-lifetime 3600 >"$TMP/origin.out" 2>&1 &
    ORIGIN_PID=$!
    for _ in $(seq 1 100); do          # at most ~10 s
        [ -s "$TMP/origin.port" ] && break
        kill -0 "$ORIGIN_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -s "$TMP/origin.port" ] || { cat "$TMP/origin.out" >&2; die "origin server did not start"; }
    ORIGIN_PORT=$(cat "$TMP/origin.port")
    ORIGIN="http://127.0.0.1:$ORIGIN_PORT"
    touch "$TMP/origin.log"
}
