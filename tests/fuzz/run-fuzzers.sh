#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer
# coverage of the library) in their own build directory and runs each for
# SECONDS, then prints executions and findings per target.
#
#   tests/fuzz/run-fuzzers.sh SECONDS [TARGET...]
#
# TARGET is request_head, chunked, http_head or session (default: all).
# Environment: ICAP_FUZZ_BUILD (build directory, default build-fuzz in the
# source root), ICAP_FUZZ_JOBS (parallel fuzzer processes per target,
# default 1), ICAP_FUZZ_FLAGS (extra libFuzzer flags).
#
# New interesting inputs go to $ICAP_FUZZ_BUILD/corpus/<target> (the
# checked-in corpus/<target> is read, never written); crashes, leaks and
# timeouts to $ICAP_FUZZ_BUILD/artifacts/<target>/. A finding should be
# copied into corpus/<target>/ as regress-<what> once understood, so that
# ctest's fuzz.replay.<target> replays it. Exit status 1 if anything was
# found.
set -eu

SECONDS_EACH=${1:?usage: run-fuzzers.sh SECONDS [TARGET...]}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${ICAP_FUZZ_BUILD:-$ROOT/build-fuzz}
JOBS=${ICAP_FUZZ_JOBS:-1}
TARGETS=${*:-request_head chunked http_head session}

command -v clang++ >/dev/null || { echo "run-fuzzers.sh: clang++ not found" >&2; exit 2; }

mkdir -p "$BUILD"
cmake -S "$HERE/wrapper" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DICAP_FUZZ=ON -DICAP_SANITIZE=address,undefined \
  -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link \
  -DICAP_BUILD_EXAMPLES=OFF -DICAP_BUILD_STATIC=OFF >"$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log"; exit 2; }
bins=""
for t in $TARGETS; do bins="$bins fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$BUILD" --target $bins

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

max_len() {
  case $1 in
    request_head|http_head) echo 4096 ;;
    chunked) echo 16384 ;;
    session) echo 24576 ;;
  esac
}

summary=""
found=0
for t in $TARGETS; do
  corpus="$BUILD/corpus/$t"
  art="$BUILD/artifacts/$t"
  log="$BUILD/run-$t.log"
  mkdir -p "$corpus" "$art"
  before=$(ls "$art" | wc -l)
  echo "== fuzz_$t for ${SECONDS_EACH}s (log: $log)"
  jobs=""
  [ "$JOBS" -gt 1 ] && jobs="-jobs=$JOBS -workers=$JOBS"
  set +e
  # -jobs writes fuzz-N.log into the current directory: run in $BUILD.
  # shellcheck disable=SC2086
  (cd "$BUILD" && rm -f fuzz-[0-9]*.log &&
   "$BUILD/tests/fuzz/fuzz_$t" "$corpus" "$HERE/corpus/$t" \
    -dict="$HERE/icap.dict" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2560 \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 -artifact_prefix="$art/" \
    $jobs ${ICAP_FUZZ_FLAGS:-}) >"$log" 2>&1
  rc=$?
  set -e
  if [ "$JOBS" -gt 1 ]; then
    execs=$(cat "$BUILD"/fuzz-[0-9]*.log 2>/dev/null | sed -n 's/^stat::number_of_executed_units: *//p' |
            awk '{s+=$1} END {print s+0}')
    cat "$BUILD"/fuzz-[0-9]*.log >>"$log" 2>/dev/null; rm -f "$BUILD"/fuzz-[0-9]*.log
  else
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  fi
  [ -n "$execs" ] || execs=$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#')
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  after=$(ls "$art" | wc -l)
  new=$((after - before))
  status="ok"
  if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then
    status="FINDING (exit $rc, $new new artifact(s) in $art)"
    found=1
    grep -E "ERROR: |FUZZ INVARIANT|SUMMARY" "$log" | head -5
  fi
  line="fuzz_$t: ${execs:-?} executions (${rate:-?}/s), ${cov:-cov ?}, corpus $(ls "$corpus" | wc -l) new + $(ls "$HERE/corpus/$t" | wc -l) seeds: $status"
  echo "$line"
  summary="$summary$line
"
done
echo
echo "== summary"
printf "%s" "$summary"
exit $found
