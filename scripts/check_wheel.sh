#!/usr/bin/env bash
# What CI runs for packaging (.ci/run): build, install, import, from the artefacts only.
#
#   1. scripts/build_wheels.sh: sdist, manylinux wheel (from the sdist), pure wheel;
#   2. the manylinux wheel in a fresh venv, imported from outside the repository with
#      WSFAST_REQUIRE_EXTENSIONS=1: compiled kernels AND compiled parser active, and
#      scripts/smoke_wheel.py (handshake, permessage-deflate, messages, close, in memory);
#   3. the pure py3-none-any wheel in a fresh venv: the twins, same smoke test;
#   4. the sdist in a fresh venv with NO working C compiler (CC/LDSHARED=/bin/false and a PATH
#      whose gcc/cc fail; --no-cache-dir --no-binary wsfast so no cached wheel is reused):
#      the install succeeds, prints setup.py's "WARNING: wsfast: could not build the compiled
#      kernels ...", installs no extension module, and wsfast runs on the twins.
#
# Usage: scripts/check_wheel.sh        (PYTHON=python3.X to pick the interpreter)
#   KEEP=1 keeps the work directory (artefacts and logs) and prints where it is.
# Needs network access to PyPI (build tools; setuptools and Cython for isolated builds).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
T0=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wsfast-check.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
    trap 'echo "check_wheel: kept $WORK"' EXIT
else
    trap 'rm -rf "$WORK"' EXIT
fi
step() { printf '\n=== check_wheel: %s (%ds)\n' "$1" "$((SECONDS - T0))"; }
fail() { echo "check_wheel.sh: FAILED: $*" >&2; exit 1; }
venv() { "$PYTHON" -m venv "$1"; }  # a fresh venv (its bundled pip is enough)
# from a directory outside the repository, so ./wsfast can never be the one imported
RUNDIR=$WORK/run
mkdir -p "$RUNDIR"
SMOKE=$ROOT/scripts/smoke_wheel.py

step "build (scripts/build_wheels.sh)"
PYTHON=$PYTHON bash "$ROOT/scripts/build_wheels.sh" --outdir "$WORK/out"
SDIST=$(ls "$WORK"/out/dist/wsfast-*.tar.gz)
WHEEL=$(ls "$WORK"/out/wheelhouse/wsfast-*manylinux*.whl)
PURE=$(ls "$WORK"/out/dist/wsfast-*-py3-none-any.whl)

step "manylinux wheel in a fresh venv: $(basename "$WHEEL")"
venv "$WORK/venv-wheel"
"$WORK/venv-wheel/bin/python" -m pip install -q --disable-pip-version-check --no-index "$WHEEL"
(cd "$RUNDIR" && WSFAST_REQUIRE_EXTENSIONS=1 "$WORK/venv-wheel/bin/python" -c "
import wsfast, wsfast._speedups as s
assert s.IMPLEMENTATION == 'cython' and s.PARSER_IMPLEMENTATION == 'cython', (s.IMPLEMENTATION, s.PARSER_IMPLEMENTATION)
assert '/site-packages/' in wsfast.__file__, wsfast.__file__
print('kernels:', s.IMPLEMENTATION, '| parser:', s.PARSER_IMPLEMENTATION, '|', wsfast.__file__)")
(cd "$RUNDIR" && "$WORK/venv-wheel/bin/python" "$SMOKE" --expect cython)

step "pure wheel in a fresh venv: $(basename "$PURE")"
venv "$WORK/venv-pure"
"$WORK/venv-pure/bin/python" -m pip install -q --disable-pip-version-check --no-index "$PURE"
(cd "$RUNDIR" && "$WORK/venv-pure/bin/python" "$SMOKE" --expect python)

step "sdist with no C compiler: $(basename "$SDIST")"
venv "$WORK/venv-nocc"
# a PATH on which every usual compiler name exists and fails, plus CC/CXX/LDSHARED=/bin/false
mkdir -p "$WORK/nocc"
for cc in gcc cc c++ g++ clang clang++ x86_64-linux-gnu-gcc aarch64-linux-gnu-gcc ld; do
    printf '#!/bin/sh\necho "no compiler here ($0)" >&2\nexit 1\n' >"$WORK/nocc/$cc"
    chmod +x "$WORK/nocc/$cc"
done
# -v: pip shows a build backend's output only when verbose (or when the build fails); the
# warning is what users see with `pip install -v`, and the import below is the real check.
if ! (cd "$RUNDIR" && env PATH="$WORK/nocc:$PATH" CC=/bin/false CXX=/bin/false LDSHARED=/bin/false \
        "$WORK/venv-nocc/bin/python" -m pip install -v --disable-pip-version-check \
        --no-cache-dir --no-binary wsfast "$SDIST") >"$WORK/nocc.log" 2>&1; then
    tail -60 "$WORK/nocc.log" >&2
    fail "installing the sdist without a compiler"
fi
WARNING="WARNING: wsfast: could not build the compiled kernels"
n=$(grep -cF "$WARNING" "$WORK/nocc.log") \
    || { tail -60 "$WORK/nocc.log" >&2; fail "no '$WARNING' in the pip install -v output"; }
echo "pip install -v printed the warning ($n x, once per extension); the first one:"
grep -F -m1 "$WARNING" "$WORK/nocc.log" | sed 's/^ */  /' | cut -c1-400
grep -q "Successfully installed wsfast" "$WORK/nocc.log" || fail "pip did not install wsfast"
SITE=$("$WORK/venv-nocc/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
found=$(find "$SITE/wsfast" \( -name '*.so' -o -name '*.pyd' \) -print)
[ -z "$found" ] || fail "extension modules were built after all (compiler not blocked?): $found"
(cd "$RUNDIR" && "$WORK/venv-nocc/bin/python" "$SMOKE" --expect python)
if (cd "$RUNDIR" && WSFAST_REQUIRE_EXTENSIONS=1 "$WORK/venv-nocc/bin/python" -c "import wsfast") 2>/dev/null; then
    fail "WSFAST_REQUIRE_EXTENSIONS=1 imported a build without extensions"
fi
echo "WSFAST_REQUIRE_EXTENSIONS=1 import fails there, as it should"

step "ok in $((SECONDS - T0))s"
echo "sdist:     $(basename "$SDIST")"
echo "manylinux: $(basename "$WHEEL")"
echo "pure:      $(basename "$PURE")"
