#!/bin/sh
# Types and lint, as CI runs them (called from .ci/run inside the CI venv, where the `test`
# extra is installed). Installs nothing. Both tools read their settings from pyproject.toml.
# Exits non-zero if either finds anything; runs both so one run shows every problem.
#
#   scripts/lint.sh                 ruff on wsfast/ fuzz/ scripts/, mypy --strict on wsfast/
#   scripts/lint.sh FILE|DIR ...    both tools on the given paths only (ruff on all of them,
#                                   mypy on the Python files/packages among them)
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
status=0
if [ $# -eq 0 ]; then
    set -- wsfast/ fuzz/ scripts/
    typed="wsfast/"
else
    typed=""
    for p in "$@"; do
        # A module with a stub (the Cython-compiled _parser.py) is checked through its .pyi,
        # as mypy does when it crawls a package; listing both would be a duplicate module.
        case "$p" in
            *.py) [ -f "${p}i" ] && p="${p}i" ;;
            *.pyi) ;;
            *) [ -d "$p" ] || continue ;;
        esac
        case " $typed " in
            *" $p "*) ;;
            *) typed="$typed $p" ;;
        esac
    done
fi
echo "== ruff check $*"
"$PY" -m ruff check "$@" || status=1
if [ -n "$typed" ]; then
    echo "== mypy --strict$typed (with the .pyi stubs of the compiled modules)"
    # shellcheck disable=SC2086
    "$PY" -m mypy --strict $typed || status=1
fi
exit $status
