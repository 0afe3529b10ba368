#!/usr/bin/env bash
# What CI runs: bounded to fit ~12 minutes on a 2-core runner.
#   - the full suite (517 cases) against the main server and with the main client, compiled kernels;
#   - sections 1-10 (12.x/13.x compression excluded) on the pure-Python twins, server and client;
#   - the strict check of all four runs against autobahn/expected_deviations.json.
# The README section is printed, not written (CI does not commit; run_all.sh regenerates it).
#
#   PYTHON=/path/to/venv/python autobahn/ci.sh     # default: `python` on PATH
#
# Needs: wsfast built in place (python setup.py build_ext --inplace), kosoku installed, and
# coreutils `timeout`. Exit status: non-zero on any unexpected result or an incomplete run.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHON

started=$(date +%s)
status=0
run() { echo "+ $*"; "$@" || status=1; }

run "$PYTHON" autobahn/server.py --server main --impl cython --timeout 660
run "$PYTHON" autobahn/client.py --client main --impl cython --timeout 600
run "$PYTHON" autobahn/server.py --server main --impl python -x '12.*' -x '13.*' --timeout 180
run "$PYTHON" autobahn/client.py --client main --impl python -x '12.*' -x '13.*' --timeout 180

run "$PYTHON" autobahn/check.py \
    autobahn/reports/server-main-cython autobahn/reports/client-main-cython \
    autobahn/reports/server-main-python autobahn/reports/client-main-python
"$PYTHON" autobahn/report.py --stdout \
    autobahn/reports/server-main-cython autobahn/reports/client-main-cython \
    autobahn/reports/server-main-python autobahn/reports/client-main-python || status=1
echo "ci: $(( $(date +%s) - started )) s wall, status $status"
exit $status
