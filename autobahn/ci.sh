#!/usr/bin/env bash
# What CI runs, bounded to fit ~12 minutes on a 2-core runner:
#   1. the full suite (517 cases) against the main server and with the main client, compiled
#      kernels: the two runs go side by side (the client run is one case at a time, request and
#      answer in turn, so it leaves most of a core idle for the server run);
#   2. sections 1-10 (12.x/13.x compression excluded) on the pure-Python twins, server and
#      client, side by side;
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

# Run two commands side by side, each logging to a file; show the logs when both are done.
pair() {
    local log1=$1 log2=$2 cmd1=$3 cmd2=$4
    echo "+ $cmd1 &"
    echo "+ $cmd2 &"
    bash -c "$cmd1" > "$log1" 2>&1 &
    local pid1=$!
    bash -c "$cmd2" > "$log2" 2>&1 &
    local pid2=$!
    wait "$pid1" || status=1
    wait "$pid2" || status=1
    for log in "$log1" "$log2"; do echo "--- $log"; cat "$log"; done
}

P="\"$PYTHON\""
pair "$REPORTS/ci-server-main-cython.log" "$REPORTS/ci-client-main-cython.log" \
    "$P autobahn/server.py --server main --impl cython -p 2 --timeout 900" \
    "$P autobahn/client.py --client main --impl cython --timeout 900"
pair "$REPORTS/ci-server-main-python.log" "$REPORTS/ci-client-main-python.log" \
    "$P autobahn/server.py --server main --impl python -x '12.*' -x '13.*' --timeout 240" \
    "$P autobahn/client.py --client main --impl python -x '12.*' -x '13.*' --timeout 240"

RUNS="$REPORTS/server-main-cython $REPORTS/client-main-cython $REPORTS/server-main-python $REPORTS/client-main-python"
echo "+ check"
"$PYTHON" autobahn/check.py $RUNS || status=1
"$PYTHON" autobahn/report.py --stdout $RUNS || status=1
echo "ci: $(( $(date +%s) - started )) s wall, status $status"
exit $status
