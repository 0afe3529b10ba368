#!/usr/bin/env bash
# Everything: every server and every client under test, the full Autobahn suite (517 cases),
# both kernel builds (compiled, and the pure-Python twins with WSFAST_NO_EXTENSIONS=1), then
# the strict check and the README "Conformance" section.
#
#   autobahn/run_all.sh                 # from anywhere; PYTHON=/path/to/venv/python to choose
#
# About 35-45 minutes on a 2-core machine (see autobahn/README.md). Exit status: the check's.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHON

started=$(date +%s)
status=0
for impl in cython python; do
    for server in $("$PYTHON" autobahn/server.py --list); do
        "$PYTHON" autobahn/server.py --server "$server" --impl "$impl" || status=1
    done
    for client in $("$PYTHON" autobahn/client.py --list); do
        "$PYTHON" autobahn/client.py --client "$client" --impl "$impl" || status=1
    done
done

"$PYTHON" autobahn/check.py || status=1
"$PYTHON" autobahn/report.py || status=1
echo "run_all: $(( $(date +%s) - started )) s, status $status"
exit $status
