#!/usr/bin/env bash
# Everything: every server and every client under test, the full Autobahn suite (517 cases),
# both kernel builds (compiled, and the pure-Python twins with WSFAST_NO_EXTENSIONS=1), then
# the strict check and the README "Conformance" section (report.py writes it).
#
#   autobahn/run_all.sh                 # from anywhere; PYTHON=/path/to/venv/bin/python to choose
#
# The server runs and the client runs go in two lanes side by side (as in ci.sh):
# about two hours on a 2-core machine: 30 runs, each 7-11 minutes for the compression cases
# 12.* 13.* and 7-17 s for 1.*-10.* (see autobahn/README.md). Logs: autobahn/reports/run_all-*.log.
# Exit status: non-zero if any run was incomplete or the check found anything unexpected.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHON
REPORTS=autobahn/reports
mkdir -p "$REPORTS"

started=$(date +%s)
status=0

servers() {
    local s=0 impl name
    for impl in cython python; do
        for name in $("$PYTHON" autobahn/server.py --list); do
            "$PYTHON" autobahn/server.py --server "$name" --impl "$impl" || s=1
        done
    done
    return $s
}
clients() {
    local s=0 impl name
    for impl in cython python; do
        for name in $("$PYTHON" autobahn/client.py --list); do
            "$PYTHON" autobahn/client.py --client "$name" --impl "$impl" || s=1
        done
    done
    return $s
}

servers > "$REPORTS/run_all-servers.log" 2>&1 &
pid_s=$!
clients > "$REPORTS/run_all-clients.log" 2>&1 &
pid_c=$!
wait "$pid_s" || status=1
wait "$pid_c" || status=1
grep -h '^==\|^!!' "$REPORTS/run_all-servers.log" "$REPORTS/run_all-clients.log"

"$PYTHON" autobahn/check.py || status=1
"$PYTHON" autobahn/report.py || status=1
echo "run_all: $(( $(date +%s) - started )) s wall, status $status"
exit $status
