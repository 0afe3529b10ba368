#!/bin/sh
# Build zlib-ng (native API, static, position-independent) into a prefix, for the
# zlib-ng build of the deflate kernel (wsfast._inflate_ng):
#
#   scripts/build_zlibng.sh /tmp/zlibng          # then:
#   ZLIBNG_ROOT=/tmp/zlibng pip install .        # (or python setup.py build_ext --inplace)
#
# The sources come from $ZLIBNG_SRC (a zlib-ng source tree) if set, else from the sdist of
# the PyPI package `zlib-ng` (python-zlib-ng), which carries the zlib-ng release it wraps:
# python-zlib-ng $PYTHON_ZLIB_NG_VERSION (default 1.1.0) ships zlib-ng 2.3.3. Needs cmake
# and a C compiler. The native API (zng_* symbols, ZLIB_COMPAT=OFF) never clashes with the
# zlib that CPython's zlib module loads; setup.py also keeps the symbols out of the
# extension's exports. About 5 s on 2 cores.
set -eu
PREFIX=${1:?usage: build_zlibng.sh PREFIX}
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SRC=${ZLIBNG_SRC:-}
if [ -z "$SRC" ]; then
    VERSION=${PYTHON_ZLIB_NG_VERSION:-1.1.0}
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "zlib-ng==$VERSION" -d "$WORK" 2>/dev/null \
        || "$PY" -m pip download --quiet --no-deps --no-binary :all: "zlib-ng==$VERSION" -d "$WORK"
    tar -xzf "$WORK"/zlib_ng-"$VERSION".tar.gz -C "$WORK"
    SRC="$WORK/zlib_ng-$VERSION/src/zlib_ng/zlib-ng"
fi
mkdir "$WORK/build"
CFLAGS="${CFLAGS:-} -fPIC -O2" cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DZLIB_COMPAT=OFF -DBUILD_SHARED_LIBS=OFF \
    -DZLIB_ENABLE_TESTS=OFF -DZLIBNG_ENABLE_TESTS=OFF -DWITH_GTEST=OFF \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib >"$WORK/cmake.log" \
    || { cat "$WORK/cmake.log"; exit 1; }
cmake --build "$WORK/build" --config Release --target zlib-ng -j "$(nproc 2>/dev/null || echo 2)" \
    >"$WORK/build.log" || { tail -50 "$WORK/build.log"; exit 1; }
cmake --install "$WORK/build" --config Release >/dev/null
ls "$PREFIX/include/zlib-ng.h" "$PREFIX/lib/libz-ng.a"
