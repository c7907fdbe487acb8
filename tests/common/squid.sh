# What the Squid end-to-end scripts share (sourced, bash): finding squid,
# the unprivileged user it must run as under root, and the part of
# squid.conf every test Squid has (loopback only, no cache, no DNS, logs in
# the script's temp dir, persistent ICAP connections).

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
