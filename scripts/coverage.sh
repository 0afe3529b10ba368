#!/bin/sh
# Branch coverage of wsfast/ on the pure-Python build, engine tests only, then the floors.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
mkdir -p build
export COVERAGE_FILE=build/.coverage  # the data file, not at the repo root
WSFAST_NO_EXTENSIONS=1 "$PY" -m coverage run -m pytest -q -p no:cacheprovider \
    tests/test_connection.py tests/test_handshake.py tests/test_frame_encoder.py \
    tests/test_messages.py tests/test_permessage_deflate.py tests/test_speedups.py \
    tests/test_fuzz_regressions.py tests/test_engine_edges.py tests/test_parser_pxd.py
"$PY" -m coverage json -q
"$PY" scripts/coverage_floor.py build/coverage.json
