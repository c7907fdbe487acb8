#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# compare.sh [options]
#
# Benchmarks libicap's example echo server (icap-echo) against c-icap 0.5.10
# with srv_echo, both on 127.0.0.1, with icap-bench.  Every row of the table
# is run against the servers in alternation (libicap, c-icap, the limit
# peer bench/icap-relay, libicap, ...; the relay skips preview rows) for --rounds rounds; the table shows the median of the rounds.
# Also measures each server's resident memory with N idle keep-alive
# connections.  Writes bench/results/compare.md, compare.png (gnuplot) and
# the raw per-run data compare-raw.jsonl.
#
# Options:
#   --libicap-echo PATH   icap-echo binary (default build/examples/icap-echo)
#   --bench PATH          icap-bench binary (default build/bench/icap-bench)
#   --only-cicap          benchmark c-icap only (also automatic when the
#                         icap-echo binary does not exist)
#   --workers W           icap-echo --workers (default 2)
#   --cicap-threads T     c-icap ThreadsPerChild for the load rows (1100)
#   --rounds R            rounds per row (default 3)
#   --duration S          measured seconds per run (default 5)
#   --warmup S            warm-up seconds per run (default 1)
#   --bench-threads T     icap-bench --threads (default 1)
#   --rows LIST           comma-separated SCENARIO@CONNECTIONS, replaces the
#                         default rows (e.g. 'options@16,echo:65536@256')
#   --idle N              idle keep-alive connections for the memory test
#                         (default 10000, 0 = skip)
#   --hold S              how long the idle connections are held (default 5)
#   --out DIR             output directory (default bench/results)
#
# Everything started here is stopped by PID from an EXIT trap; every wait is
# bounded.  Needs python3, gnuplot, ss, pgrep, c-icap.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/common/proc.sh
. "$HERE/../tests/common/proc.sh"
ROOT=$(cd "$HERE/.." && pwd)

log() { printf '[compare] %s\n' "$*" >&2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

LIBICAP="$ROOT/build/examples/icap-echo"
BENCH=""
ONLY_CICAP=0
WORKERS=2
CICAP_THREADS=1100
ROUNDS=3
DURATION=5
WARMUP=1
BENCH_THREADS=1
ROWS_ARG=""
IDLE_N=10000
HOLD=5
OUT="$HERE/results"

while [ $# -gt 0 ]; do
    case "$1" in
        --libicap-echo) LIBICAP=$2; shift 2 ;;
        --bench) BENCH=$2; shift 2 ;;
        --only-cicap) ONLY_CICAP=1; shift ;;
        --workers) WORKERS=$2; shift 2 ;;
        --cicap-threads) CICAP_THREADS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --bench-threads) BENCH_THREADS=$2; shift 2 ;;
        --rows) ROWS_ARG=$2; shift 2 ;;
        --idle) IDLE_N=$2; shift 2 ;;
        --hold) HOLD=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) usage ;;
        *) log "unknown option: $1"; usage ;;
    esac
done
for v in WORKERS CICAP_THREADS ROUNDS BENCH_THREADS IDLE_N; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { log "$v must be a non-negative integer"; exit 2; }
done
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 50 ] || { log "--rounds must be 1..50"; exit 2; }
for v in DURATION WARMUP HOLD; do
    [[ "${!v}" =~ ^[0-9]+([.][0-9]+)?$ ]] || { log "$v must be a number of seconds"; exit 2; }
done

for tool in python3 gnuplot ss pgrep c-icap; do
    command -v "$tool" >/dev/null 2>&1 || { log "$tool is required"; exit 3; }
done

if [ -z "$BENCH" ]; then
    for cand in "$ROOT/build/bench/icap-bench" "$HERE/icap-bench"; do
        [ -x "$cand" ] && { BENCH=$cand; break; }
    done
fi
[ -n "$BENCH" ] && [ -x "$BENCH" ] || { log "icap-bench not found; build it (see bench/README.md) or pass --bench"; exit 3; }
if [ "$ONLY_CICAP" = 0 ] && [ ! -x "$LIBICAP" ]; then
    log "libicap icap-echo not found at $LIBICAP: benchmarking c-icap only"
    ONLY_CICAP=1
fi

if [ -n "$ROWS_ARG" ]; then
    IFS=',' read -r -a ROWS <<<"$ROWS_ARG"
else
    ROWS=(options@16 options@256 respmod204@16 respmod204@256 reqmod204@16 reqmod204@256
          echo:1024@16 echo:1024@256 echo:65536@16 echo:65536@256 echo:1048576@16
          respmod204@1)
fi
for r in "${ROWS[@]}"; do
    [[ "$r" =~ ^[a-z0-9:]+@[0-9]+$ ]] || { log "bad row '$r' (SCENARIO@CONNECTIONS)"; exit 2; }
done

# Many connections need many descriptors (servers started below inherit it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$IDLE_N" -gt 0 ] && [ "$NOFILE" != unlimited ] && [ "$IDLE_N" -gt $((NOFILE - 200)) ]; then
    log "open-file limit $NOFILE too low for --idle $IDLE_N; using $((NOFILE - 200))"
    IDLE_N=$((NOFILE - 200))
fi

mkdir -p "$OUT" || exit 3
TMP=$(mktemp -d -t icap-compare.XXXXXX) || exit 3
RAW="$TMP/raw.jsonl"
: >"$RAW"

# ------------------------------------------------------------- processes ---
STARTED=()          # PIDs we started and must stop

# stop_server PID: the server and the children it forked.
stop_server() { stop_tree "$1"; }

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM HUP
    for p in "${STARTED[@]}"; do stop_server "$p"; done
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
exit_traps

forget_pid() {
    local p keep=()
    for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    STARTED=("${keep[@]}")
}

# proc_cpu PID: user+sys CPU seconds of PID and its direct children
proc_cpu() {
    local p t=0 v
    for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        t=$((t + ${v:-0}))
    done
    awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}

# proc_rss PID: VmRSS in KiB of PID plus its direct children
proc_rss() {
    local p t=0 v
    for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# wait_ready PORT: until the server answers an OPTIONS (~30 s at most)
wait_ready() {
    local port=$1 pid=$2 i
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || return 1
        if "$BENCH" --host 127.0.0.1 --port "$port" --service echo --scenario options \
                --connections 1 --requests 1 --timeout 1 --max-time 3 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# start_cicap PORT THREADS: sets SRV_PID (c-icap main process) and SRV_STOP
# (the start-c-icap.sh process to stop)
start_cicap() {
    local port=$1 threads=$2 out="$TMP/cicap-$1.out" i
    MAX_LIFETIME=7200 "$HERE/start-c-icap.sh" "$port" "$threads" >"$out" 2>"$TMP/cicap-$1.err" &
    SRV_STOP=$!
    STARTED+=("$SRV_STOP")
    SRV_PID=""
    for i in $(seq 1 300); do                   # ~60 s (many threads start slowly)
        kill -0 "$SRV_STOP" 2>/dev/null || break
        SRV_PID=$(sed -n 's/^READY pid=\([0-9]*\).*/\1/p' "$out")
        [ -n "$SRV_PID" ] && break
        sleep 0.2
    done
    if [ -z "$SRV_PID" ]; then
        log "c-icap did not start on port $port:"; cat "$TMP/cicap-$1.err" >&2
        return 1
    fi
    log "c-icap pid $SRV_PID on 127.0.0.1:$port (ThreadsPerChild $threads)"
}

start_libicap() {
    local port=$1
    "$LIBICAP" --host 127.0.0.1 --port "$port" --workers "$WORKERS" --max-connections 30000 \
        >"$TMP/libicap-$port.log" 2>&1 &
    SRV_PID=$!
    SRV_STOP=$SRV_PID
    STARTED+=("$SRV_PID")
    if ! wait_ready "$port" "$SRV_PID"; then
        log "icap-echo did not come up on port $port:"; tail -n 20 "$TMP/libicap-$port.log" >&2
        return 1
    fi
    log "libicap icap-echo pid $SRV_PID on 127.0.0.1:$port (--workers $WORKERS)"
}

# start_relay PORT: bench/icap-relay, the "limit" peer (one thread per worker)
start_relay() {
    local port=$1
    "$RELAY" --host 127.0.0.1 --port "$port" --threads "$WORKERS" >"$TMP/relay-$port.log" 2>&1 &
    SRV_PID=$!
    SRV_STOP=$SRV_PID
    STARTED+=("$SRV_PID")
    wait_ready "$port" "$SRV_PID" || { log "icap-relay did not come up on port $port"; return 1; }
    log "limit icap-relay pid $SRV_PID on 127.0.0.1:$port (--threads $WORKERS)"
}

# ------------------------------------------------------------------ runs ---
ALL_OK=1

# run_load NAME PORT PID SCENARIO CONNECTIONS ROUND
run_load() {
    local name=$1 port=$2 pid=$3 scen=$4 conns=$5 round=$6
    local out="$TMP/run.json" err="$TMP/run.err" cpu0 cpu1 rss peak=0 bp rc i max_iter
    cpu0=$(proc_cpu "$pid")
    "$BENCH" --host 127.0.0.1 --port "$port" --service echo --scenario "$scen" \
        --connections "$conns" --duration "$DURATION" --warmup "$WARMUP" \
        --threads "$BENCH_THREADS" --json >"$out" 2>"$err" &
    bp=$!
    max_iter=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", (d + w + 60) * 2 }')
    for i in $(seq 1 "$max_iter"); do           # sample RSS every 0.5 s
        kill -0 "$bp" 2>/dev/null || break
        rss=$(proc_rss "$pid")
        [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.5
    done
    kill -0 "$bp" 2>/dev/null && { log "icap-bench did not finish; stopping it"; kill -TERM "$bp" 2>/dev/null; }
    wait "$bp"
    rc=$?
    cpu1=$(proc_cpu "$pid")
    [ -s "$out" ] || echo null >"$out"
    [ "$rc" = 0 ] || { ALL_OK=0; log "$name $scen@$conns round $round: icap-bench exit $rc"; head -n 5 "$err" >&2; }
    kill -0 "$pid" 2>/dev/null || { ALL_OK=0; log "WARNING: $name (pid $pid) is no longer running"; }
    python3 - "$name" "$scen" "$conns" "$round" "$rc" "$cpu0" "$cpu1" "$peak" "$out" >>"$RAW" <<'PY'
import json, sys
name, scen, conns, rnd, rc, c0, c1, peak, path = sys.argv[1:]
try:
    bench = json.load(open(path))
except Exception:
    bench = None
print(json.dumps({"kind": "load", "server": name, "scenario": scen, "connections": int(conns),
                  "round": int(rnd), "rc": int(rc), "srv_cpu_s": round(float(c1) - float(c0), 3),
                  "srv_rss_peak_kib": int(peak), "bench": bench}))
PY
    if [ -s "$out" ] && [ "$(cat "$out")" != null ]; then
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("[compare]   %-8s %-14s c=%-4s %10.0f req/s  p50 %8.0f us  p99 %8.0f us  %8.1f MB/s  err %d inv %d" % (sys.argv[2], d["scenario"], d["connections"], d["requests_per_s"], d["latency_us"]["p50"], d["latency_us"]["p99"], d["body_mb_per_s"], d["errors"], d["invalid"]))' "$out" "$name" >&2
    fi
}

# run_idle NAME: fresh server instance, N idle connections, RSS before/after
run_idle() {
    local name=$1 port out err bp rc base idle est="" i pid
    port=$(free_port)
    if [ "$name" = c-icap ]; then
        start_cicap "$port" $((IDLE_N + 100)) || { ALL_OK=0; return 1; }
    else
        start_libicap "$port" || { ALL_OK=0; return 1; }
    fi
    pid=$SRV_PID
    wait_ready "$port" "$pid" || { ALL_OK=0; log "$name not answering"; stop_server "$SRV_STOP"; forget_pid "$SRV_STOP"; return 1; }
    sleep 1
    base=$(proc_rss "$pid")
    out="$TMP/idle.json"; err="$TMP/idle.err"
    "$BENCH" --host 127.0.0.1 --port "$port" --service echo --idle "$IDLE_N" --hold "$HOLD" \
        --json >"$out" 2>"$err" &
    bp=$!
    for i in $(seq 1 600); do                   # ramp: at most ~150 s
        kill -0 "$bp" 2>/dev/null || break
        est=$(sed -n 's/^IDLE-READY established=\([0-9]*\).*/\1/p' "$err")
        [ -n "$est" ] && break
        sleep 0.25
    done
    sleep 1
    idle=$(proc_rss "$pid")
    wait "$bp"
    rc=$?
    [ "$rc" = 0 ] || { ALL_OK=0; log "$name idle test: icap-bench exit $rc"; grep -v IDLE-READY "$err" | head -n 5 >&2; }
    [ -s "$out" ] || echo null >"$out"
    python3 - "$name" "$IDLE_N" "$base" "$idle" "${est:-0}" "$rc" "$out" >>"$RAW" <<'PY'
import json, sys
name, n, base, idle, est, rc, path = sys.argv[1:]
try:
    bench = json.load(open(path))
except Exception:
    bench = None
print(json.dumps({"kind": "idle", "server": name, "idle_n": int(n), "rss_baseline_kib": int(base),
                  "rss_idle_kib": int(idle), "established": int(est), "rc": int(rc), "bench": bench}))
PY
    log "$name idle: baseline $base KiB, with $est/$IDLE_N idle connections $idle KiB"
    stop_server "$SRV_STOP"
    forget_pid "$SRV_STOP"
}

# ------------------------------------------------------------------ main ---
log "icap-bench: $BENCH"
[ "$ONLY_CICAP" = 0 ] && log "libicap:    $LIBICAP (--workers $WORKERS)"
log "rows: ${ROWS[*]}; rounds $ROUNDS; ${DURATION}s + ${WARMUP}s warm-up per run"

C_PORT=$(free_port)
start_cicap "$C_PORT" "$CICAP_THREADS" || exit 5
C_PID=$SRV_PID
if [ "$ONLY_CICAP" = 0 ]; then
    L_PORT=$(free_port)
    start_libicap "$L_PORT" || exit 5
    L_PID=$SRV_PID
fi
wait_ready "$C_PORT" "$C_PID" || { log "c-icap not answering"; exit 5; }
RELAY=${RELAY:-$(dirname "$BENCH")/icap-relay}
R_PID=
if [ -x "$RELAY" ]; then
    R_PORT=$(free_port)
    start_relay "$R_PORT" || exit 5
    R_PID=$SRV_PID
else
    log "icap-relay not found at $RELAY: no limit column"
fi

for row in "${ROWS[@]}"; do
    scen=${row%@*}
    conns=${row##*@}
    for round in $(seq 1 "$ROUNDS"); do
        [ "$ONLY_CICAP" = 0 ] && run_load libicap "$L_PORT" "$L_PID" "$scen" "$conns" "$round"
        run_load c-icap "$C_PORT" "$C_PID" "$scen" "$conns" "$round"
        # the relay does not implement preview (100 Continue)
        [ -n "$R_PID" ] && [ "${scen#preview}" = "$scen" ] &&
            run_load limit "$R_PORT" "$R_PID" "$scen" "$conns" "$round"
    done
done

# the load servers are not needed any more: the idle test uses fresh ones
for p in "${STARTED[@]}"; do stop_server "$p"; done
STARTED=()

if [ "$IDLE_N" -gt 0 ]; then
    [ "$ONLY_CICAP" = 0 ] && run_idle libicap
    run_idle c-icap
fi

# ---------------------------------------------------------------- report ---
cp "$RAW" "$OUT/compare-raw.jsonl"
ENV_INFO=$(printf 'nproc=%s; cpu=%s; kernel=%s; c-icap=%s; libuv=%s; date=%s' \
    "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" "$(uname -r)" \
    "$(c-icap -V 2>&1 | head -n1)" "$(pkg-config --modversion libuv 2>/dev/null || echo '?')" \
    "$(date -u '+%Y-%m-%d %H:%M UTC')")
python3 "$HERE/compare-report.py" --raw "$RAW" --out "$OUT" --rounds "$ROUNDS" \
    --duration "$DURATION" --warmup "$WARMUP" --workers "$WORKERS" \
    --cicap-threads "$CICAP_THREADS" --bench-threads "$BENCH_THREADS" \
    --env "$ENV_INFO" --only-cicap "$ONLY_CICAP" || { log "report generation failed"; exit 6; }
if gnuplot "$OUT/compare.gp" 2>"$TMP/gnuplot.err"; then
    log "wrote $OUT/compare.md, $OUT/compare.png, $OUT/compare-raw.jsonl"
else
    log "gnuplot failed:"; cat "$TMP/gnuplot.err" >&2
    ALL_OK=0
fi
rm -f "$OUT/compare.gp" "$OUT/compare.dat"
cat "$OUT/compare.md"

[ "$ALL_OK" = 1 ] || { log "some runs reported errors, invalid responses or failures"; exit 1; }
exit 0
