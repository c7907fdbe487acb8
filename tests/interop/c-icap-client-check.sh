#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# c-icap-client-check.sh - exercise an ICAP service with Debian's c-icap-client.
#
# usage: c-icap-client-check.sh HOST:PORT SERVICE [options]
#
#   HOST:PORT     ICAP server to test (keep it on 127.0.0.1)
#   SERVICE       service path, as in icap://HOST:PORT/SERVICE
# options:
#   --modifies    the service may change bodies: for 200 answers only require
#                 that an adapted message came back (no byte comparison)
#   --timeout S   limit for each c-icap-client run (default 20; after 3
#                 timeouts in a row the remaining checks fail without running)
#   --keep        keep the temp dir (inputs, outputs, logs) and print it
#   --tls         speak TLS (c-icap-client -tls); the server certificate is
#                 verified against OpenSSL's default CA store, which
#                 SSL_CERT_FILE=FILE in the environment points at a test CA
#   --tls-no-verify  with --tls: do not verify the server certificate
#   -v, --verbose show details (ICAP status per run) on stderr
#   -h, --help
#
# Runs c-icap-client in OPTIONS, RESPMOD and REQMOD modes with previews of 0,
# 1024, default (the server's) and larger than the body, with -nopreview,
# with and without "Allow: 204" (-no204), with an empty and a 1 MiB body.
# REQMOD/RESPMOD checks run for the methods the OPTIONS answer announces
# (both if OPTIONS fails).
#
# stdout: "PASS name" / "FAIL name: reason" per check ("SKIP name: why" for
# checks not run, not counted), then "N passed, N failed".  Exit status 0
# only if nothing failed, 2 on a usage error, 77 (ctest's SKIP code) if a
# required program (c-icap-client, timeout) is not installed.
#
# Note: c-icap-client exits 0 even when the server answers 404/500, so every
# check parses the ICAP status line from its -v output.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../common/proc.sh
. "$HERE/../common/proc.sh"
# shellcheck source=../common/checks.sh
. "$HERE/../common/checks.sh"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
T_START=$(now_ms)
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-2}"; }
say()  { printf '[c-icap-client-check] %s\n' "$*" >&2; }
info() { [ "$VERBOSE" = 1 ] && printf '[c-icap-client-check]   %s\n' "$*" >&2; return 0; }
die()  { say "error: $*"; exit 2; }

MODIFIES=0; TIMEOUT=20; KEEP=0; VERBOSE=0; POS=(); TLS_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --modifies)   MODIFIES=1; shift ;;
        --timeout)    [ $# -ge 2 ] || die "--timeout needs a value"; TIMEOUT=$2; shift 2 ;;
        --keep)       KEEP=1; shift ;;
        --tls)        TLS_ARGS+=(-tls); shift ;;
        --tls-no-verify) TLS_ARGS+=(-tls-no-verify); shift ;;
        -v|--verbose) VERBOSE=1; shift ;;
        -h|--help)    usage 0 ;;
        -*)           say "unknown option: $1"; usage 2 ;;
        *)            POS+=("$1"); shift ;;
    esac
done
[ ${#POS[@]} -eq 2 ] || usage 2
[[ "${POS[0]}" =~ ^(.+):([0-9]+)$ ]] || die "first argument must be HOST:PORT"
HOST=${BASH_REMATCH[1]}; PORT=${BASH_REMATCH[2]}
SERVICE=${POS[1]#/}
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -ge 1 ] || die "bad --timeout"

# -------------------------------------------------------------- packages ---
# A test must never install packages behind the user's back (CI installs them
# itself), so a missing program makes this script exit 77, which ctest
# reports as SKIPPED (SKIP_RETURN_CODE 77), instead of failing.
require_progs say c-icap-client:c-icap timeout:coreutils cmp:diffutils

# ------------------------------------------------------ temp dir + trap ---
TMP=$(mktemp -d -t c-icap-client-check.XXXXXX) || die "mktemp failed"
BG_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    stop_pid "$BG_PID" 1
    if [ "$KEEP" = 1 ]; then say "kept temp dir: $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
exit_traps say

# ------------------------------------------------------------- test data ---
head -c 3000 /dev/urandom > "$TMP/medium.bin"      # larger than a 1024 preview
head -c 500 /dev/urandom > "$TMP/small.bin"        # fits in a 1024 preview
head -c 1048576 /dev/urandom > "$TMP/large.bin"
: > "$TMP/empty.bin"

# client NAME ARGS...: run c-icap-client against the service with -v; the
# combined output goes to $TMP/NAME.log, the adapted body to $TMP/NAME.out.
# Sets RC.
client() {
    local name=$1; shift
    rm -f "$TMP/$name.out"
    timeout -k 5 "$TIMEOUT" c-icap-client -i "$HOST" -p "$PORT" -s "$SERVICE" -v ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} "$@" \
        >"$TMP/$name.log" 2>&1 </dev/null &
    BG_PID=$!
    wait "$BG_PID"
    RC=$?
    BG_PID=""
}

# icap_status LOG: numeric status of the ICAP response in c-icap-client -v output
icap_status() {
    awk '/^ICAP HEADERS:/ { f = 1; next }
         f && match($0, /ICAP\/1\.0 [0-9][0-9][0-9]/) { print substr($0, RSTART + 9, 3); exit }' "$1"
}
# icap_header LOG NAME: value of an ICAP response header
icap_header() {
    awk -v n="$2" 'BEGIN { n = tolower(n) ":" }
         /^ICAP HEADERS:/ { f = 1; next }
         f && /^[A-Z]+ HEADERS:/ { exit }
         f { s = $0; sub(/^[ \t]+/, "", s); if (tolower(substr(s, 1, length(n))) == n) { v = substr(s, length(n) + 1); sub(/^[ \t]+/, "", v); print v; exit } }' "$1"
}
# http_section LOG: the encapsulated HTTP header block c-icap-client printed
http_section() {
    awk '/^(REQMOD|RESPMOD) HEADERS:/ { f = 1; next } f && NF == 0 { exit } f { sub(/^[ \t]+/, ""); print }' "$1"
}
first_line() { tr '\n' ' ' < "$1" | cut -c1-160; }

# check_mod NAME KIND INPUT ALLOW204 PREVIEW ARGS...
#   KIND:     resp | req-post | req-get
#   INPUT:    file sent as body ("" for req-get)
#   ALLOW204: 1 if the client sends Allow: 204, PREVIEW: 1 if it sends a preview
check_mod() {
    local name=$1 kind=$2 input=$3 a204=$4 prev=$5; shift 5
    local r="" st istag
    if [ "$TIMEOUTS_IN_ROW" -ge 3 ]; then
        # A server that hangs would otherwise cost --timeout per check.
        result "$name" "not run: the last 3 c-icap-client runs timed out"
        return
    fi
    if [ -n "$input" ]; then
        client "$name" -f "$input" -o "$TMP/$name.out" "$@"
    else
        client "$name" -o "$TMP/$name.out" "$@"
    fi
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
        TIMEOUTS_IN_ROW=$((TIMEOUTS_IN_ROW + 1))
        result "$name" "c-icap-client timed out after ${TIMEOUT}s"
        return
    fi
    TIMEOUTS_IN_ROW=0
    if [ "$RC" -ne 0 ]; then
        result "$name" "c-icap-client exit $RC: $(first_line "$TMP/$name.log")"
        return
    fi
    st=$(icap_status "$TMP/$name.log")
    istag=$(icap_header "$TMP/$name.log" ISTag)
    info "$name: ICAP ${st:-none}${istag:+, ISTag $istag}"
    case "$st" in
        200)
            if [ ! -f "$TMP/$name.out" ]; then
                r+="ICAP 200 but c-icap-client wrote no adapted message; "
            elif [ "$kind" = req-get ]; then
                local rl
                rl=$(http_section "$TMP/$name.log" | head -n 1)
                [[ "$rl" == GET\ * ]] || r+="adapted request line is '$rl', want GET; "
                if [ "$MODIFIES" = 0 ] && [[ "$rl" != *"$REQ_URL"* ]]; then
                    r+="adapted request URL changed: '$rl'; "
                fi
            elif [ "$MODIFIES" = 0 ] && ! cmp -s "$input" "$TMP/$name.out"; then
                r+="adapted body differs from the original ($(stat -c %s "$TMP/$name.out") vs $(stat -c %s "$input") bytes); "
            fi
            if [ "$kind" = resp ]; then
                http_section "$TMP/$name.log" | head -n 1 | grep -q '^HTTP/1\.[01] [0-9][0-9][0-9]' ||
                    r+="no HTTP status line in the adapted response; "
            fi
            if [ -n "${EXPECT_HTTP_HDR:-}" ] && [ "$MODIFIES" = 0 ] &&
               ! http_section "$TMP/$name.log" | grep -qiF -- "$EXPECT_HTTP_HDR"; then
                r+="encapsulated header '$EXPECT_HTTP_HDR' lost in adaptation; "
            fi
            ;;
        204)
            if [ "$a204" = 0 ] && [ "$prev" = 0 ]; then
                r+="ICAP 204 although the client sent neither Allow: 204 nor a preview; "
            fi
            ;;
        206)
            [[ " $* " == *" -206 "* ]] || r+="ICAP 206 without Allow: 206; "
            ;;
        "")
            r+="no ICAP status line in c-icap-client -v output: $(first_line "$TMP/$name.log" | cut -c1-100); "
            ;;
        *)
            r+="ICAP status $st; "
            ;;
    esac
    if [ -n "$st" ] && [ -z "$istag" ]; then
        r+="no ISTag header in the ICAP response (RFC 3507 4.7); "
    fi
    result "$name" "$r"
}

REQ_URL="http://interop.test/c-icap-client-check"
TIMEOUTS_IN_ROW=0

# ------------------------------------------------------------- OPTIONS ---
client options
r=""; METHODS=""; SRV_PREVIEW=""
note_timeout() {  # count timeouts of the OPTIONS runs too
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then TIMEOUTS_IN_ROW=$((TIMEOUTS_IN_ROW + 1)); fi
}
note_timeout
if [ "$RC" -ne 0 ]; then
    r="c-icap-client exit $RC: $(first_line "$TMP/options.log")"
else
    st=$(icap_status "$TMP/options.log")
    METHODS=$(icap_header "$TMP/options.log" Methods)
    SRV_PREVIEW=$(icap_header "$TMP/options.log" Preview)
    [ "$st" = 200 ] || r+="ICAP status ${st:-none} (want 200); "
    if [ "$st" = 200 ]; then
        [ -n "$METHODS" ] || r+="no Methods header; "
        [ -n "$(icap_header "$TMP/options.log" ISTag)" ] || r+="no ISTag header; "
        [ -n "$(icap_header "$TMP/options.log" Encapsulated)" ] || r+="no Encapsulated header; "
    fi
    info "options: ICAP ${st:-none}; Methods: ${METHODS:-?}; Preview: ${SRV_PREVIEW:-none}; Allow: $(icap_header "$TMP/options.log" Allow)"
fi
result options "$r"

# An unknown service must be refused (RFC 3507 4.3.3: 404 ICAP Service not found).
SAVED_SERVICE=$SERVICE
SERVICE="${SAVED_SERVICE}-no-such-service-$$"
client options-unknown-service
note_timeout
SERVICE=$SAVED_SERVICE
st=$(icap_status "$TMP/options-unknown-service.log")
info "options-unknown-service: ICAP ${st:-none}"
if [ "$RC" -ne 0 ]; then
    result options-unknown-service "c-icap-client exit $RC: $(first_line "$TMP/options-unknown-service.log")"
elif [ "$st" = 404 ]; then
    pass options-unknown-service
else
    fail options-unknown-service "OPTIONS for an unknown service answered ICAP ${st:-nothing} (want 404)"
fi

DO_RESP=1; DO_REQ=1
if [ -n "$METHODS" ]; then
    [[ "$METHODS" == *RESPMOD* ]] || DO_RESP=0
    [[ "$METHODS" == *REQMOD* ]] || DO_REQ=0
fi
PREVIEW_ON=1
[[ "${SRV_PREVIEW:-}" =~ ^[0-9]+$ ]] || PREVIEW_ON=0   # no Preview in OPTIONS: no previews

# ------------------------------------------------------------- RESPMOD ---
if [ "$DO_RESP" = 1 ]; then
    M=$TMP/medium.bin
    for a in 1 0; do
        sfx=""; no204=(); [ "$a" = 0 ] && { sfx="-no204"; no204=(-no204); }
        check_mod "respmod-preview-default$sfx" resp "$M" "$a" "$PREVIEW_ON" "${no204[@]}"
        check_mod "respmod-preview-0$sfx"       resp "$M" "$a" "$PREVIEW_ON" -w 0 "${no204[@]}"
        check_mod "respmod-preview-1024$sfx"    resp "$M" "$a" "$PREVIEW_ON" -w 1024 "${no204[@]}"
        check_mod "respmod-preview-gt-body$sfx" resp "$TMP/small.bin" "$a" "$PREVIEW_ON" -w 4096 "${no204[@]}"
        check_mod "respmod-nopreview$sfx"       resp "$M" "$a" 0 -nopreview "${no204[@]}"
    done
    check_mod respmod-with-req-hdr       resp "$M" 1 "$PREVIEW_ON" -resp "$REQ_URL/resp"
    check_mod respmod-empty-body         resp "$TMP/empty.bin" 1 "$PREVIEW_ON"
    check_mod respmod-empty-body-nopreview-no204 resp "$TMP/empty.bin" 0 0 -nopreview -no204
    check_mod respmod-1m                 resp "$TMP/large.bin" 1 "$PREVIEW_ON"
    check_mod respmod-1m-nopreview-no204 resp "$TMP/large.bin" 0 0 -nopreview -no204
    check_mod respmod-allow206           resp "$M" 1 "$PREVIEW_ON" -206
    # extra ICAP/HTTP headers must be tolerated (and kept by an echo service)
    EXPECT_HTTP_HDR="X-Interop-Http-Resp: 1" \
    check_mod respmod-extra-headers resp "$M" 0 0 -nopreview -no204 -resp "$REQ_URL/hdr" \
        -x "X-Interop-Icap: 1" -hx "X-Interop-Http-Req: 1" -rhx "X-Interop-Http-Resp: 1"
else
    skip "respmod-*" "OPTIONS Methods '$METHODS' has no RESPMOD"
fi

# -------------------------------------------------------------- REQMOD ---
if [ "$DO_REQ" = 1 ]; then
    M=$TMP/medium.bin
    check_mod reqmod-get                 req-get "" 1 "$PREVIEW_ON" -req "$REQ_URL/get"
    check_mod reqmod-get-nopreview-no204 req-get "" 0 0 -req "$REQ_URL/get" -nopreview -no204
    for a in 1 0; do
        sfx=""; no204=(); [ "$a" = 0 ] && { sfx="-no204"; no204=(-no204); }
        check_mod "reqmod-post-preview-default$sfx" req-post "$M" "$a" "$PREVIEW_ON" -req "$REQ_URL/post" -method POST "${no204[@]}"
        check_mod "reqmod-post-preview-0$sfx"       req-post "$M" "$a" "$PREVIEW_ON" -req "$REQ_URL/post" -method POST -w 0 "${no204[@]}"
        check_mod "reqmod-post-preview-1024$sfx"    req-post "$M" "$a" "$PREVIEW_ON" -req "$REQ_URL/post" -method POST -w 1024 "${no204[@]}"
        check_mod "reqmod-post-preview-gt-body$sfx" req-post "$TMP/small.bin" "$a" "$PREVIEW_ON" -req "$REQ_URL/post" -method POST -w 4096 "${no204[@]}"
        check_mod "reqmod-post-nopreview$sfx"       req-post "$M" "$a" 0 -req "$REQ_URL/post" -method POST -nopreview "${no204[@]}"
    done
    check_mod reqmod-post-1m-nopreview-no204 req-post "$TMP/large.bin" 0 0 -req "$REQ_URL/post" -method POST -nopreview -no204
else
    skip "reqmod-*" "OPTIONS Methods '$METHODS' has no REQMOD"
fi

T_END=$(now_ms)
say "runtime $(( (T_END - T_START) / 1000 )).$(( (T_END - T_START) % 1000 / 100 ))s against icap://$HOST:$PORT/$SERVICE"
if [ "$NFAIL" -gt 0 ] && [ "$KEEP" = 0 ]; then
    say "re-run with --keep to inspect c-icap-client's output per check"
fi
echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
