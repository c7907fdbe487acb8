# SPDX-License-Identifier: MIT
# What the Squid end-to-end scripts share (sourced, bash): finding squid,
# the unprivileged user it must run as under root, and the part of
# squid.conf every test Squid has (loopback only, no cache, no DNS, logs in
# the script's temp dir, persistent ICAP connections).

ICAP_COMMON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# find_squid: sets SQUID_BIN; Debian puts squid in /usr/sbin, which is not
# always on a normal user's PATH, so ask dpkg where the package put it.
find_squid() {
    SQUID_BIN=$(command -v squid 2>/dev/null) ||
        SQUID_BIN=$(dpkg -L squid-openssl squid 2>/dev/null | grep -m1 '/sbin/squid$')
    [ -n "$SQUID_BIN" ] && [ -x "$SQUID_BIN" ]
}

# squid_user: sets SQUID_USER. Squid refuses to keep root privileges; as
# root it switches to this user (proxy or nobody). Empty when not root.
squid_user() {
    local u
    SQUID_USER=""
    [ "$(id -u)" -eq 0 ] || return 0
    for u in proxy nobody; do id "$u" >/dev/null 2>&1 && { SQUID_USER=$u; return 0; }; done
    return 1
}

# squid_base_conf HTTP_PORT NAME DIR: prints the common squid.conf lines;
# DIR holds the pid file and the logs.
squid_base_conf() {
    echo "http_port 127.0.0.1:$1"
    echo "visible_hostname $2"
    [ -n "$SQUID_USER" ] && echo "cache_effective_user $SQUID_USER"
    echo "pid_filename $3/squid.pid"
    echo "cache_log $3/cache.log"
    echo "coredump_dir $3"
    echo "logfile_rotate 0"
    echo "strip_query_terms off"
    echo "access_log stdio:$3/access.log squid"
    echo "cache deny all"
    echo "cache_mem 8 MB"
    echo "shutdown_lifetime 0 seconds"
    echo "pinger_enable off"
    echo "netdb_filename none"
    echo "dns_nameservers 127.0.0.1"
    # Squid's own hosts file: names resolve the same on every machine. On
    # Debian as it ships, /etc/hosts also maps localhost to ::1, which Squid
    # tries first, and an origin listening on 127.0.0.1 only is then
    # unreachable (HTTP 503 for http://localhost:PORT/).
    printf '127.0.0.1 localhost\n' > "$3/hosts"
    echo "hosts_file $3/hosts"
    echo "http_access allow localhost"
    echo "http_access deny all"
    echo "icap_enable on"
    echo "icap_persistent_connections on"
    echo "icap_send_client_ip on"
}

# stop_squid: stops the Squid of start_squid (SQUID_PID), if any.
stop_squid() {
    [ -n "$SQUID_PID" ] || return 0
    # squid -N has no kids in this config, but stop any it might have spawned.
    stop_tree "$SQUID_PID" 15
    SQUID_PID=""
}

# print_squid_tails: the end of Squid's logs in $SQD, for a failure report.
# start_squid: picks a free port, writes the caller's config with
# write_squid_conf PORT, checks it and starts Squid in the foreground mode
# (-N); sets SQUID_PID and SQUID_PORT. Retries on a taken port.
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


# start_origin FILES_DIR: tests/interop/origin-server.py on a free port; sets
# ORIGIN_PID, ORIGIN_PORT and ORIGIN (its URL); its request log is
# $TMP/origin.log.
start_origin() {
    python3 "$ICAP_COMMON_DIR/../interop/origin-server.py" --dir "$1" --port-file "$TMP/origin.port" \
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
