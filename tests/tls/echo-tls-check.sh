#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# echo-tls-check.sh HOST:PORT CERTS LOG RELOAD_DIR - bad input and certificate
# reload against `icap-echo --tls-port PORT --tls-client-ca CERTS/ca.pem`
# (optional client certificates) whose certificate files are
# RELOAD_DIR/cur.pem and RELOAD_DIR/cur.key and whose log goes to LOG.
#
# Each bad client must be refused, promptly, with the reason in the log,
# while the server goes on serving; a reload (SIGHUP) while c-icap-client
# requests run must fail none of them and must change the certificate that
# new handshakes get. Prints PASS/FAIL lines and "N passed, N failed".
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: $0 HOST:PORT CERTS LOG RELOAD_DIR" >&2; exit 2; }
HOST=${1%:*}; PORT=${1##*:}; CERTS=$2; LOG=$3; RD=$4
for c in openssl c-icap-client ss timeout; do
    command -v "$c" >/dev/null 2>&1 || { echo "SKIP: $c missing" >&2; exit 77; }
done
TMP=$(mktemp -d -t echo-tls-check.XXXXXX)
BG=""
trap '[ -n "$BG" ] && kill "$BG" 2>/dev/null; rm -rf "$TMP"' EXIT
NPASS=0; NFAIL=0
result() { if [ -z "$2" ]; then echo "PASS $1"; NPASS=$((NPASS + 1)); else echo "FAIL $1: $2"; NFAIL=$((NFAIL + 1)); fi; }
# The log is appended to across runs: only lines after this point count.
BASE=$(wc -l < "$LOG" 2>/dev/null || echo 0)
since() { tail -n +"$((BASE + 1))" "$LOG"; }
# logged TEXT: the server log gets TEXT within 10 s (bounded poll)
logged() { for _ in $(seq 1 100); do since | grep -qF -- "$1" && return 0; sleep 0.1; done; return 1; }
reloads() { since | grep -c 'TLS certificate reloaded'; }
REQ=$'OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
# tls_options [s_client options]: an OPTIONS request over TLS; prints the answer
tls_options() {
    printf '%s' "$REQ" | timeout 20 openssl s_client -connect "$HOST:$PORT" -CAfile "$CERTS/ca.pem" \
        -verify_return_error -quiet -ign_eof "$@" 2>"$TMP/s_client.err"
}
serial() {  # the serial of the certificate a new handshake gets
    timeout 20 openssl s_client -connect "$HOST:$PORT" -CAfile "$CERTS/ca.pem" </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null
}

# --- a good client, with and without a client certificate
out=$(tls_options)
[[ "$out" == "ICAP/1.0 200"* ]] && r="" || r="no 200 over TLS: ${out:0:80} $(head -c 200 "$TMP/s_client.err")"
result options-over-tls "$r"
out=$(tls_options -cert "$CERTS/client.pem" -key "$CERTS/client.key")
[[ "$out" == "ICAP/1.0 200"* ]] && r="" || r="no 200 with the right client certificate: ${out:0:80}"
result client-cert-accepted "$r"

# --- plain ICAP on the TLS port: closed at once, reason logged
start=$(date +%s)
out=$(printf '%s' "$REQ" | timeout 20 bash -c 'exec 3<>"/dev/tcp/$1/$2"; cat >&3; cat <&3' _ "$HOST" "$PORT" 2>&1)
rc=$?
r=""
[ "$rc" -eq 124 ] && r+="connection not closed within 20 s; "
[[ "$out" == *"ICAP/1.0"* ]] && r+="got an ICAP answer in plain text; "
logged "plain text to a TLS port" || r+="no log line for it; "
result plain-icap-on-tls-port "$r"

# --- client certificates that must be refused (verification is optional
# here, so a client without one is let in; with one, it must verify)
for bad in client-other:"unable to get local issuer certificate" client-expired:"certificate has expired"; do
    name=${bad%%:*}; why=${bad#*:}
    out=$(tls_options -cert "$CERTS/$name.pem" -key "$CERTS/$name.key")
    r=""
    [[ "$out" == *"ICAP/1.0 200"* ]] && r+="answered despite the bad certificate; "
    logged "certificate refused: $why" || r+="no log line '$why'; "
    result "refused-$name" "$r"
done

# --- a handshake that never completes: closed by the read timeout (30 s)
out=$(timeout 60 bash -c 'exec 3<>"/dev/tcp/$1/$2"; printf "\x16\x03\x01\x01\x00" >&3; cat <&3 >/dev/null; echo closed' _ "$HOST" "$PORT" 2>&1)
r=""
[ "$out" = closed ] || r+="connection not closed within 60 s; "
logged "handshake not completed within" || r+="no log line for it; "
result stalled-handshake "$r"

# --- the server still serves after all that
out=$(tls_options)
[[ "$out" == "ICAP/1.0 200"* ]] && r="" || r="no 200 after the bad clients: ${out:0:80}"
result still-serving "$r"

# --- reload under load
PID=$(ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
if [ -z "$PID" ]; then
    result reload-under-load "cannot find the server's pid"
else
    head -c 65536 /dev/urandom > "$TMP/body"
    ( for i in $(seq 1 60); do
          timeout 20 c-icap-client -i "$HOST" -p "$PORT" -s echo -tls -tls-no-verify -v \
              -f "$TMP/body" -o "$TMP/out.$i" -nopreview -no204 >"$TMP/log.$i" 2>&1
          echo "$i $?" >> "$TMP/runs"
      done ) &
    BG=$!
    before=$(serial)
    r=""
    for round in 1 2 3 4; do
        if [ $((round % 2)) = 1 ]; then src=server2; else src=server; fi
        cp "$CERTS/$src.pem" "$RD/new.pem" && cp "$CERTS/$src.key" "$RD/new.key"
        mv -f "$RD/new.key" "$RD/cur.key" && mv -f "$RD/new.pem" "$RD/cur.pem"
        n=$(reloads)
        kill -HUP "$PID"
        for _ in $(seq 1 100); do [ "$(reloads)" -gt "$n" ] && break; sleep 0.1; done
        [ "$(reloads)" -gt "$n" ] || r+="round $round: no reload logged; "
        want=$(openssl x509 -in "$CERTS/$src.pem" -noout -serial)
        [ "$(serial)" = "$want" ] || r+="round $round: new handshakes do not get $src.pem; "
        sleep 0.5
    done
    wait "$BG"; BG=""
    nok=0
    for i in $(seq 1 60); do
        if grep -q 'ICAP/1.0 200' "$TMP/log.$i" && cmp -s <(tail -c 65536 "$TMP/out.$i") "$TMP/body"; then
            nok=$((nok + 1))
        fi
    done
    [ "$nok" -eq 60 ] || r+="$((60 - nok)) of 60 transactions failed during reloads; "
    [ -n "$before" ] || r+="no certificate before the reloads; "
    result reload-under-load "$r"
fi
echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
