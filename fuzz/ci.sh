#!/bin/sh
# Bounded fuzzing for CI (called from .ci/run): every target on both builds (compiled and
# WSFAST_NO_EXTENSIONS=1), FUZZ_SECONDS each (default 4: 5 targets x 2 builds ~ 1 minute with start-up),
# starting from fuzz/seeds. Prints the executions per target; exits non-zero on any finding
# (libFuzzer writes the reproducer as crash-* in $FUZZ_OUT, default build/fuzz).
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
SECS="${FUZZ_SECONDS:-4}"
OUT="${FUZZ_OUT:-build/fuzz}"
mkdir -p "$OUT"
status=0
for build in compiled pure; do
    if [ "$build" = pure ]; then noext=1; else noext=; fi
    for t in server_handshake client_handshake server_frames client_frames differential; do
        corpus="$OUT/corpus-$t"
        mkdir -p "$corpus"
        log="$OUT/$t-$build.log"
        if WSFAST_NO_EXTENSIONS=$noext timeout $((SECS * 3 + 30)) "$PY" fuzz/run.py "$t" \
            -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=1024 -timeout=10 \
            -artifact_prefix="$OUT/$t-$build-" "$corpus" "fuzz/seeds/$t" >"$log" 2>&1; then
            result=ok
        else
            result=FINDING
            status=1
        fi
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p')
        printf '%-17s %-8s %-7s executions=%s exec/s=%s\n' "$t" "$build" "$result" "${execs:-?}" "${rate:-?}"
        if [ $result = FINDING ]; then tail -n 40 "$log"; fi
    done
done
exit $status
