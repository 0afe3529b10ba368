#!/usr/bin/env bash
# What CI runs, bounded to fit ~12 minutes on a 2-core runner:
#   1. the full suite (517 cases) against the main server and with the main client, compiled
#      kernels, side by side (the client run is one case at a time, request and answer in
#      turn, so it leaves most of a core to the server run);
#   2. sections 1-10 (12.x/13.x compression excluded) on the pure-Python twins, server and
#      client, after the server run, while the client run goes on;
#   3. the strict check of the four runs against autobahn/expected_deviations.json, and the
#      README section printed (not written: CI does not commit; run_all.sh regenerates it).
#
#   PYTHON=/path/to/venv/bin/python autobahn/ci.sh     # default: `python` on PATH
#
# Needs wsfast built in place (python setup.py build_ext --inplace), kosoku installed in the
# same environment, and coreutils `timeout`. Every run is bounded (--timeout, per-case socket
# timeouts in the client). Exit status: non-zero on any unexpected result or incomplete run.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHON
REPORTS=autobahn/reports
mkdir -p "$REPORTS"

started=$(date +%s)
status=0

# Two lanes side by side, each logging to a file; the logs are shown when both are done.
#   lane A: server, full suite, compiled (about 5.5 min), then sections 1-10 on the Python
#           twins, server and client (about 15 s);
#   lane B: client, full suite, compiled (about 8 min, the critical path).
lane_a() {
    local s=0
    set -x
    "$PYTHON" autobahn/server.py --server main --impl cython -p 2 --timeout 900 || s=1
    "$PYTHON" autobahn/server.py --server main --impl python -x '12.*' -x '13.*' --timeout 240 || s=1
    "$PYTHON" autobahn/client.py --client main --impl python -x '12.*' -x '13.*' --timeout 240 || s=1
    return $s
}
lane_b() {
    set -x
    "$PYTHON" autobahn/client.py --client main --impl cython --timeout 900
}
lane_a > "$REPORTS/ci-lane-a.log" 2>&1 &
pid_a=$!
lane_b > "$REPORTS/ci-lane-b.log" 2>&1 &
pid_b=$!
wait "$pid_a" || status=1
wait "$pid_b" || status=1
for log in "$REPORTS/ci-lane-a.log" "$REPORTS/ci-lane-b.log"; do echo "--- $log"; cat "$log"; done

RUNS="$REPORTS/server-main-cython $REPORTS/client-main-cython $REPORTS/server-main-python $REPORTS/client-main-python"
echo "+ check"
"$PYTHON" autobahn/check.py $RUNS || status=1
"$PYTHON" autobahn/report.py --stdout $RUNS || status=1
echo "ci: $(( $(date +%s) - started )) s wall, status $status"
exit $status
