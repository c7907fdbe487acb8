#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# squid-examples.sh - check what the C++ examples change, through a real Squid.
#
# usage: squid-examples.sh --icap HOST:PORT --example NAME [--keep] [-v]
#
#   --icap HOST:PORT   the running example server (127.0.0.1)
#   --example NAME     icap-url-filter   (REQMOD url_filter, started with
#                                         --block blocked.example --block ads.test
#                                         --block host)
#                      icap-header-rewrite (RESPMOD header_rewrite)
#                      icap-body-rewrite (RESPMOD body_rewrite, --from Squid
#                                         --to Calamari)
#                      icap-scanner      (RESPMOD scanner, --exempt image/)
#                      icap-clamav       (REQMOD+RESPMOD avscan on a clamd with
#                                         the EICAR signature; examples/clamav)
#                      icap-clamav-down-open, icap-clamav-down-closed
#                                        (the same with clamd unreachable,
#                                         with and without --fail-open)
#   --keep             keep the temp dir (configs, logs, responses)
#   -v                 details on stderr
#
# Starts example-origin.py (HTML, text, images, EICAR test files, 5 MiB of
# random bytes) and Squid (no cache, ICAP bypass off, preview 1024) on free
# 127.0.0.1 ports, fetches with curl through Squid and prints one
# "PASS name" / "FAIL name: reason" line per check, then "N passed, N
# failed". Exit 0 only if nothing failed; 2 on a usage error; 77 (ctest's
# SKIP) if squid, curl or python3 is missing. Every wait is bounded; an EXIT
# trap stops what the script started, by PID.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../common/proc.sh
. "$HERE/../common/proc.sh"
# shellcheck source=../common/checks.sh
. "$HERE/../common/checks.sh"
# shellcheck source=../common/squid.sh
. "$HERE/../common/squid.sh"
say() { printf '[squid-examples] %s\n' "$*" >&2; }
info() { [ "$VERBOSE" = 1 ] && say "  $*"; return 0; }
die() { say "error: $*"; exit 2; }

ICAP=""; EXAMPLE=""; KEEP=0; VERBOSE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --icap) [ $# -ge 2 ] || die "--icap needs HOST:PORT"; ICAP=$2; shift 2 ;;
        --example) [ $# -ge 2 ] || die "--example needs a name"; EXAMPLE=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -v|--verbose) VERBOSE=1; shift ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
[[ "$ICAP" =~ ^(.+):([0-9]+)$ ]] || die "--icap HOST:PORT is required"
case "$EXAMPLE" in
    icap-url-filter) MODE=reqmod; SERVICE=url_filter ;;
    icap-header-rewrite) MODE=respmod; SERVICE=header_rewrite ;;
    icap-body-rewrite) MODE=respmod; SERVICE=body_rewrite ;;
    icap-scanner) MODE=respmod; SERVICE=scanner ;;
    icap-clamav|icap-clamav-down-open|icap-clamav-down-closed) MODE=both; SERVICE=avscan ;;
    *) die "--example must be icap-url-filter, icap-header-rewrite, icap-body-rewrite, icap-scanner or icap-clamav[-down-open|-down-closed]" ;;
esac

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

for c in curl python3 sha256sum; do
    command -v "$c" >/dev/null 2>&1 || { say "SKIP: $c not installed"; exit 77; }
done
find_squid || { say "SKIP: squid not installed"; exit 77; }

TMP=$(mktemp -d -t squid-examples.XXXXXX) || die "mktemp failed"
SQD=$TMP/squid
mkdir -p "$SQD" "$TMP/files" "$TMP/out"
ORIGIN_PID=""; SQUID_PID=""; BG_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    [ -n "$BG_PID" ] && stop_pid "$BG_PID" 2
    stop_pid "$SQUID_PID" 15
    stop_pid "$ORIGIN_PID" 5
    if [ "$KEEP" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
exit_traps say


# ----------------------------------------------------------- test files ---
python3 - "$TMP/files" "$TMP/expected" <<'PY' || die "could not make test files"
import os, random, sys
d, exp = sys.argv[1], sys.argv[2]
os.makedirs(exp, exist_ok=True)
rnd = random.Random(3507)
eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
def put(name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
def noise(n):
    return rnd.getrandbits(8 * n).to_bytes(n, "little") if n else b""
def html(n, word_every):
    out, i = bytearray(b"<!DOCTYPE html><html><body>\n"), 0
    while len(out) < n:
        out += b"<p>line %d: " % i
        out += b"x" * ((i * 37) % word_every)
        out += b" Squid"
        i += 1
    return bytes(out[:n]) + b"\n</body></html>\n"
# "Squid" at 1022..1026 spans the 1024-byte preview.
prefix = b"<html><head><title>Squid page</title></head><body>"
page = prefix + b"a" * (1022 - len(prefix)) + b"Squid" + b"b" * 2000 + b" Squid! SquidSquid</body></html>\n"
assert page.index(b"Squid", len(prefix)) == 1022
put("page.html", page)
put("big.html", html(1 << 20, 997))
put("empty.html", b"")
put("plain.txt", b"plain text that mentions Squid twice: Squid\n")
put("gz.gzhtml", b"\x1f\x8b not really gzip, mentions Squid\n")
for name in ("page.html", "big.html", "empty.html"):
    with open(os.path.join(d, name), "rb") as f:
        data = f.read()
    with open(os.path.join(exp, name), "wb") as f:
        f.write(data.replace(b"Squid", b"Calamari"))
put("eicar.bin", noise(1000) + eicar + noise(65536 - 1000 - len(eicar)))   # across the preview
put("eicar-small.txt", b"tiny file: " + eicar + b"\n")                     # inside the preview (ieof)
late = 3 * 1024 * 1024 - 30
put("eicar-late.bin", noise(late) + eicar + noise(5 * 1024 * 1024 - late - len(eicar)))
put("eicar.png", b"\x89PNG\r\n\x1a\n" + eicar + noise(3000))               # exempt type
put("clean-5m.bin", noise(5 * 1024 * 1024))
put("clean-1k.bin", noise(1024))
put("clean-100k.bin", noise(100 * 1024))
M5 = 5 * 1024 * 1024
for where, at in (("start", 100), ("mid", M5 // 2), ("end", M5 - len(eicar) - 10)):
    put("eicar-%s-5m.bin" % where, noise(at) + eicar + noise(M5 - at - len(eicar)))
with open(os.path.join(os.path.dirname(d), "eicar.sig"), "wb") as f:
    f.write(eicar + b"\n")
PY

# --------------------------------------------------------------- origin ---
python3 "$HERE/example-origin.py" --dir "$TMP/files" --port-file "$TMP/origin.port" \
    --max-lifetime 1800 >"$TMP/origin.out" 2>&1 &
ORIGIN_PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/origin.port" ] && break; kill -0 "$ORIGIN_PID" 2>/dev/null || break; sleep 0.1; done
[ -s "$TMP/origin.port" ] || { cat "$TMP/origin.out" >&2; die "origin did not start"; }
ORIGIN_PORT=$(cat "$TMP/origin.port")
ORIGIN="http://127.0.0.1:$ORIGIN_PORT"
info "origin on $ORIGIN"

# ---------------------------------------------------------------- squid ---
squid_user || die "no unprivileged user for squid"
write_conf() {
    {
        squid_base_conf "$1" squid-examples "$SQD"
        echo "icap_preview_enable on"
        echo "icap_preview_size 1024"
        echo "icap_io_timeout 30 seconds"
        if [ "$MODE" = both ]; then
            echo "icap_service svc_req reqmod_precache icap://$ICAP/$SERVICE bypass=off"
            echo "icap_service svc_resp respmod_precache icap://$ICAP/$SERVICE bypass=off"
            echo "adaptation_access svc_req allow all"
            echo "adaptation_access svc_resp allow all"
        else
            echo "icap_service svc ${MODE}_precache icap://$ICAP/$SERVICE bypass=off"
            echo "adaptation_access svc allow all"
        fi
        echo 'logformat ex %ts.%03tu %icap::rm %icap::Hs %icap::to %icap::<st %ru'
        echo "icap_log stdio:$SQD/icap.log ex"
    } > "$SQD/squid.conf"
}
start_squid() {
    local attempt port
    [ -n "$SQUID_USER" ] && chmod 755 "$TMP"
    for attempt in 1 2 3; do
        port=$(free_port)
        write_conf "$port"
        "$SQUID_BIN" -k parse -f "$SQD/squid.conf" >"$SQD/parse.out" 2>&1 || { cat "$SQD/parse.out" >&2; return 1; }
        [ -n "$SQUID_USER" ] && chown -R "$SQUID_USER" "$SQD"
        "$SQUID_BIN" -N -f "$SQD/squid.conf" >"$SQD/squid.out" 2>&1 &
        SQUID_PID=$!
        for _ in $(seq 1 150); do      # <= 30 s
            kill -0 "$SQUID_PID" 2>/dev/null || break
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then SQUID_PORT=$port; return 0; fi
            sleep 0.2
        done
        stop_pid "$SQUID_PID" 5; SQUID_PID=""
    done
    return 1
}
SQUID_PORT=""
if ! start_squid; then
    fail squid-start "squid did not listen"
    tail -n 20 "$SQD/cache.log" "$SQD/squid.out" >&2 2>/dev/null
    echo "$NPASS passed, $NFAIL failed"; exit 1
fi
pass squid-start
PROXY="http://127.0.0.1:$SQUID_PORT"
info "squid on $PROXY, icap://$ICAP/$SERVICE at ${MODE}_precache"

# ---------------------------------------------------------------- fetch ---
# fetch NAME URL [curl args]: body -> out/NAME.body, headers -> out/NAME.hdr,
# sets CODE (HTTP status, 000 on a curl failure)
fetch() {
    local name=$1 url=$2; shift 2
    run_bg curl -q -sS -x "$PROXY" --max-time 60 -o "$TMP/out/$name.body" \
        -D "$TMP/out/$name.hdr" -w '%{http_code}' "$@" "$url" \
        >"$TMP/out/$name.code" 2>"$TMP/out/$name.err"
    CODE=$(cat "$TMP/out/$name.code" 2>/dev/null); CODE=${CODE:-000}
    touch "$TMP/out/$name.body" "$TMP/out/$name.hdr"
    info "$name: HTTP $CODE, $(stat -c %s "$TMP/out/$name.body") bytes"
}
hdr() {  # hdr NAME HEADER: values of HEADER in the final response
    awk -v n="$2" 'BEGIN{n=tolower(n)} {sub(/\r$/,"")} /^HTTP\//{delete v;k=0;next}
        {i=index($0,":"); if(i>0 && tolower(substr($0,1,i-1))==n){x=substr($0,i+1); sub(/^[ \t]+/,"",x); v[k++]=x}}
        END{for(j=0;j<k;j++) print v[j]}' "$TMP/out/$1.hdr"
}
want_code() { [ "$CODE" = "$1" ] || printf 'HTTP %s (want %s; %s); ' "$CODE" "$1" "$(head -c 150 "$TMP/out/$2.err" "$TMP/out/$2.body" 2>/dev/null | tr -c '[:print:]' ' ')"; }
same_as() {  # same_as NAME FILE: body identical to FILE
    [ "$(sha_of "$TMP/out/$1.body")" = "$(sha_of "$2")" ] ||
        printf 'body differs (%s bytes, want %s); ' "$(stat -c %s "$TMP/out/$1.body")" "$(stat -c %s "$2")"
}
body_has() { grep -qaF -- "$2" "$TMP/out/$1.body" || printf 'body lacks "%s"; ' "$2"; }
has_hdr() { hdr "$1" "$2" | grep -qF -- "$3" || printf 'header %s lacks "%s" (got "%s"); ' "$2" "$3" "$(hdr "$1" "$2" | head -n1)"; }
no_hdr() { [ -z "$(hdr "$1" "$2")" ] || printf 'header %s still present ("%s"); ' "$2" "$(hdr "$1" "$2" | head -n1)"; }
icap_status_of() {  # icap_status_of URL-SUBSTRING: ICAP status codes logged for it
    local i
    for i in $(seq 1 30); do grep -qF -- "$1" "$SQD/icap.log" 2>/dev/null && break; sleep 0.1; done
    awk -v u="$1" '$2 != "OPTIONS" && index($6, u) { print $3 }' "$SQD/icap.log" | tr '\n' ' '
}
check() {  # check NAME URL -- EXPRESSIONS (shell code printing reasons)
    local name=$1 url=$2; shift 3
    fetch "$name" "$url"
    local r; r=$(eval "$*")
    result "$name" "$r"
}
F=$TMP/files; E=$TMP/expected

case "$EXAMPLE" in
icap-url-filter)
    check blocked-host "http://blocked.example/some/path?x=1" -- \
        'want_code 403 blocked-host; body_has blocked-host "Access denied"; body_has blocked-host "blocked.example"; has_hdr blocked-host Content-Type text/html'
    check blocked-subdomain "http://www.Blocked.Example./" -- \
        'want_code 403 blocked-subdomain; body_has blocked-subdomain "Access denied"'
    check blocked-with-port "http://ads.test:8080/banner.gif" -- \
        'want_code 403 blocked-with-port'
    head -c 200000 /dev/urandom > "$TMP/post.bin"
    fetch blocked-post "http://blocked.example/upload" --data-binary "@$TMP/post.bin" -H 'Expect:'
    result blocked-post "$(want_code 403 blocked-post; body_has blocked-post "Access denied")"
    check allowed-ip "$ORIGIN/page.html" -- \
        'want_code 200 allowed-ip; same_as allowed-ip "$F/page.html"'
    # "--block host" must not block "localhost" (only host and *.host).
    check allowed-suffix "http://localhost:$ORIGIN_PORT/page.html" -- \
        'want_code 200 allowed-suffix; same_as allowed-suffix "$F/page.html"'
    fetch allowed-post "$ORIGIN/echo" --data-binary "@$TMP/post.bin" -H 'Expect:'
    result allowed-post "$(want_code 200 allowed-post; body_has allowed-post "received 200000")"
    ;;
icap-header-rewrite)
    for f in page.html clean-5m.bin empty.html eicar-small.txt; do
        check "rewrite-$f" "$ORIGIN/$f" -- \
            "want_code 200 rewrite-$f; same_as rewrite-$f \"\$F/$f\"; has_hdr rewrite-$f X-Libicap rewritten; no_hdr rewrite-$f Server; no_hdr rewrite-$f X-Powered-By; has_hdr rewrite-$f Content-Type /"
    done
    ;;
icap-body-rewrite)
    for f in page.html big.html empty.html; do
        check "rewrite-$f" "$ORIGIN/$f" -- \
            "want_code 200 rewrite-$f; same_as rewrite-$f \"\$E/$f\""
    done
    check rewrite-header "$ORIGIN/page.html" -- \
        'has_hdr rewrite-header X-Libicap body-rewritten; cl=$(hdr rewrite-header Content-Length); [ -z "$cl" ] || [ "$cl" = "$(stat -c %s "$E/page.html")" ] || printf "stale Content-Length %s; " "$cl"'
    for f in plain.txt gz.gzhtml clean-5m.bin; do
        check "untouched-$f" "$ORIGIN/$f" -- \
            "want_code 200 untouched-$f; same_as untouched-$f \"\$F/$f\""
    done
    ;;
icap-scanner)
    # Found before the answer started (within --hold): a 403 page.
    for f in eicar.bin eicar-small.txt; do
        check "blocked-$f" "$ORIGIN/$f" -- \
            "want_code 403 blocked-$f; body_has blocked-$f 'Virus found'"
    done
    # Found after 3 MiB were streamed: the answer is cut off; the client
    # must never receive the complete signature or the complete file.
    check cut-off-eicar-late.bin "$ORIGIN/eicar-late.bin" -- \
        'grep -qaF -f "$TMP/eicar.sig" "$TMP/out/cut-off-eicar-late.bin.body" && printf "the signature was delivered; "; [ "$(sha_of "$TMP/out/cut-off-eicar-late.bin.body")" = "$(sha_of "$F/eicar-late.bin")" ] && printf "the whole file was delivered; "; [ "$CODE" = 200 ] || [ "$CODE" = 000 ] || [ "$CODE" = 500 ] || printf "unexpected HTTP %s; " "$CODE"'

    for f in clean-5m.bin page.html empty.html; do
        check "clean-$f" "$ORIGIN/$f" -- \
            "want_code 200 clean-$f; same_as clean-$f \"\$F/$f\""
    done
    check exempt-image "$ORIGIN/eicar.png?exempt" -- \
        'want_code 200 exempt-image; same_as exempt-image "$F/eicar.png"; s=$(icap_status_of eicar.png?exempt); [ "$s" = "204 " ] || printf "ICAP status for the exempt image: %s(want 204 in the preview); " "$s"'
    ;;
icap-clamav)
    # Clean objects of every size arrive byte-identical.
    for f in empty.html clean-1k.bin clean-100k.bin clean-5m.bin; do
        check "clean-$f" "$ORIGIN/$f" -- \
            "want_code 200 clean-$f; same_as clean-$f \"\$F/$f\""
    done
    # In the first --hold bytes: a 403 page naming the signature.
    for f in eicar-small.txt eicar-start-5m.bin; do
        check "blocked-$f" "$ORIGIN/$f" -- \
            "want_code 403 blocked-$f; body_has blocked-$f 'Virus found'; body_has blocked-$f Libicap.Test.EICAR"
    done
    # Later: clamd's verdict comes at the end of the stream, so the answer
    # has started; it is aborted and the object never arrives whole. The
    # last --hold bytes are withheld until the verdict, so a signature
    # near the end is never delivered either.
    for f in eicar-mid-5m.bin eicar-end-5m.bin eicar-late.bin; do
        check "cut-off-$f" "$ORIGIN/$f" -- \
            "[ \"\$(sha_of \"\$TMP/out/cut-off-$f.body\")\" = \"\$(sha_of \"\$F/$f\")\" ] && printf 'the whole file was delivered; '; [ \"\$CODE\" = 200 ] || [ \"\$CODE\" = 000 ] || [ \"\$CODE\" = 500 ] || [ \"\$CODE\" = 403 ] || printf 'unexpected HTTP %s; ' \"\$CODE\""
    done
    check cut-off-end-no-signature "$ORIGIN/eicar-end-5m.bin" -- \
        'grep -qaF -f "$TMP/eicar.sig" "$TMP/out/cut-off-end-no-signature.body" && printf "the signature was delivered; "; true'
    # Uploads (REQMOD): the origin never sees an infected body.
    fetch upload-eicar "$ORIGIN/echo" --data-binary "@$F/eicar-start-5m.bin" -H 'Expect:'
    result upload-eicar "$(want_code 403 upload-eicar; body_has upload-eicar 'Virus found')"
    fetch upload-eicar-small "$ORIGIN/echo" --data-binary "@$F/eicar-small.txt" -H 'Expect:'
    result upload-eicar-small "$(want_code 403 upload-eicar-small; body_has upload-eicar-small Libicap.Test.EICAR)"
    fetch upload-clean "$ORIGIN/echo" --data-binary "@$F/clean-100k.bin" -H 'Expect:'
    result upload-clean "$(want_code 200 upload-clean; body_has upload-clean 'received 102400')"
    ;;
icap-clamav-down-closed)
    # clamd unreachable, fail-closed (the default): everything scanned is
    # blocked with a page saying why.
    for f in clean-1k.bin clean-100k.bin eicar-small.txt; do
        check "blocked-$f" "$ORIGIN/$f" -- \
            "want_code 403 blocked-$f; body_has blocked-$f 'Virus scan failed'"
    done
    check no-body-passes "$ORIGIN/empty.html" -- 'want_code 200 no-body-passes'
    ;;
icap-clamav-down-open)
    # clamd unreachable, --fail-open: everything passes unscanned.
    for f in clean-1k.bin clean-100k.bin eicar-small.txt eicar-start-5m.bin; do
        check "passed-$f" "$ORIGIN/$f" -- \
            "want_code 200 passed-$f; same_as passed-$f \"\$F/$f\""
    done
    ;;
esac

# ------------------------------------------------------------- squid ok ---
# (the scanners cut eicar-late.bin, and icap-clamav eicar-mid/end-5m.bin,
# off on purpose: Squid may log those as ICAP errors)
bad=$(awk '$4 ~ /^ICAP_ERR/ && $6 !~ /eicar-(late|mid-5m|end-5m)/ { print $2, $3, $4, $6 }' "$SQD/icap.log" 2>/dev/null | head -n 3 | tr '\n' ';')
result icap-log-clean "${bad:+ICAP errors in icap.log: $bad}"
bad=$(grep -E 'suspending ICAP|ICAP service is down|essential ICAP|assertion|FATAL' "$SQD/cache.log" 2>/dev/null | head -n 2 | cut -c1-200 | tr '\n' ';')
result cache-log-clean "${bad:+$bad}"
if kill -0 "$SQUID_PID" 2>/dev/null; then pass squid-alive; else fail squid-alive "squid exited"; fi
if [ "$NFAIL" -gt 0 ]; then
    say "---- icap.log ----"; tail -n 20 "$SQD/icap.log" 2>/dev/null | sed 's/^/  | /' >&2
    say "---- cache.log ----"; tail -n 20 "$SQD/cache.log" 2>/dev/null | cut -c1-250 | sed 's/^/  | /' >&2
fi
echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
