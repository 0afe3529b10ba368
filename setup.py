"""Build the optional compiled kernels.

Everything else (metadata, packages) lives in pyproject.toml.

WSFAST_BUILD_EXT selects what happens to the Cython extensions:
  auto (default)  build them; if Cython or a C compiler is missing, warn and install the
                  pure-Python twins only (wsfast works, slower);
  yes             build them or fail the install (release wheels, CI);
  no              never build them (the pure ``py3-none-any`` wheel, PyPy).
WSFAST_CYTHON_TRACE=1 builds with line tracing (coverage of .pyx code);
WSFAST_ANNOTATE=1 writes cython -a HTML next to each .pyx.
"""

import os
import platform
import sys
import warnings

from setuptools import setup
from setuptools.command.build_ext import build_ext

MODE = os.environ.get("WSFAST_BUILD_EXT", "auto").lower()
if MODE not in ("auto", "yes", "no"):
    sys.exit(f"WSFAST_BUILD_EXT must be auto, yes or no, not {MODE!r}")
if platform.python_implementation() != "CPython" and MODE == "auto":
    MODE = "no"

KERNELS = ["_mask", "_utf8", "_inflate"]


class OptionalBuildExt(build_ext):
    """build_ext that degrades to the pure-Python twins in ``auto`` mode."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers
            self._degrade(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._degrade(exc)

    def _degrade(self, exc):
        if MODE == "yes":
            raise
        msg = (
            f"wsfast: could not build the compiled kernels ({exc}); "
            "installing the pure-Python implementation, which is correct but slower."
        )
        warnings.warn(msg)
        print("WARNING: " + msg, file=sys.stderr)


def extensions():
    if MODE == "no":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if MODE == "yes":
            raise
        print("WARNING: wsfast: Cython is not available; installing the pure-Python "
              "implementation only.", file=sys.stderr)
        return []
    from setuptools import Extension

    trace = os.environ.get("WSFAST_CYTHON_TRACE") == "1"
    macros = [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")] if trace else []
    exts = []
    for name in KERNELS:
        pyx = os.path.join("wsfast", name + ".pyx")
        if not os.path.exists(pyx):
            continue
        exts.append(Extension(f"wsfast.{name}", [pyx], define_macros=macros,
                              libraries=["z"] if name == "_inflate" else [],
                              extra_compile_args=["-O3"] if os.name != "nt" else []))
    return cythonize(
        exts,
        compiler_directives={"language_level": "3", "linetrace": trace},
        annotate=os.environ.get("WSFAST_ANNOTATE") == "1",
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
