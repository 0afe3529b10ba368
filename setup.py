"""Build the optional compiled kernels.

Everything else (metadata, packages) lives in pyproject.toml.

WSFAST_BUILD_EXT selects what happens to the Cython extensions:
  auto (default)  build them; if Cython or a C compiler is missing, warn and install the
                  pure-Python twins only (wsfast works, slower);
  yes             build them or fail the install (release wheels, CI);
  no              never build them (the pure ``py3-none-any`` wheel, PyPy).
WSFAST_CYTHON_TRACE=1 builds with line tracing (coverage of .pyx code);
WSFAST_ANNOTATE=1 writes cython -a HTML next to each .pyx.
ZLIB_ROOT=<prefix> links _inflate against the zlib in <prefix>/include and <prefix>/lib
(needed on Windows; see zlib_options()).
ZLIBNG_ROOT=<prefix> also builds wsfast._inflate_ng: the same deflate kernel against a static
zlib-ng (native API) in <prefix>/include and <prefix>/lib, carried inside the extension, so
the wheel needs no zlib-ng at run time (scripts/build_zlibng.sh makes the prefix). Without
it, the zlib-ng backend comes from the optional `zlib-ng` package, if installed.
WSFAST_BUILD_ONLY=_inflate,_inflate_ng builds only the named extensions (development).
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

KERNELS = ["_mask", "_utf8", "_inflate", "_frame"]
#: Pure-Python modules that are also compiled: compiled name -> source file (under wsfast/).
PURE_COMPILED = {"_parser_c": "_parser.py", "_messages_c": "_messages.py"}
#: The kernels' and the parser's .py twins are written for C: their indices are checked by the
#: code itself, so Cython's own checks are off.
KERNEL_DIRECTIVES = ["boundscheck=False", "wraparound=False", "cdivision=True"]
#: The modules compiled in place are ordinary Python and must keep its semantics: ``x[-1]``
#: (wraparound), IndexError (boundscheck), Python's ``//`` and ``%``. Annotations stay
#: documentation: the compiled module takes exactly what the source takes (a ``timeout:
#: float`` of None, an int subclass, ...). tests/test_compiled_pxd.py checks these.
IN_PLACE_DIRECTIVES = ["annotation_typing=False"]
#: Pure-Python modules compiled *in place*, as themselves (typed by the .pxd beside each; the
#: extension shadows the source, wsfast/_env.py loads the source under WSFAST_NO_EXTENSIONS).
#: Keep in sync with wsfast/_env.py's COMPILED_IN_PLACE (tests/test_compiled_pxd.py checks).
IN_PLACE = ["connection", "handler", "handshake", "_sockio", "_nbio", "sync._connection", "loop._loop"]
PURE_COMPILED.update({name: name.replace(".", "/") + ".py" for name in IN_PLACE})
#: The deflate kernel compiled a second time, against zlib-ng (see zlibng_options()).
ZLIBNG_ROOT = os.environ.get("ZLIBNG_ROOT")
if ZLIBNG_ROOT:
    PURE_COMPILED["_inflate_ng"] = "_inflate.pyx"
ONLY = [n for n in os.environ.get("WSFAST_BUILD_ONLY", "").split(",") if n]


class OptionalBuildExt(build_ext):
    """build_ext that Cythonizes at build time (never for sdist/egg_info, so no generated C
    lands in a source tree by accident) and, in ``auto`` mode, degrades to the pure-Python
    twins with one clear warning when Cython or a C compiler is missing."""

    failed = False

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:  # compile the C files side by side (``-j`` overrides)
            self.parallel = os.cpu_count() or 1

    def run(self):
        if not self.extensions:
            return
        try:
            self.extensions = cythonize_all(self.extensions)
            super().run()
        except Exception as exc:  # no Cython, no compiler, no headers
            self._degrade(exc)

    def build_extension(self, ext):
        if self.failed:
            return  # one warning is enough; the twins cover every module
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._degrade(exc)

    def _degrade(self, exc):
        if MODE == "yes":
            raise
        self.failed = True
        msg = (
            f"wsfast: could not build the compiled kernels ({type(exc).__name__}: {exc}); "
            "installing the pure-Python implementation, which is correct but slower."
        )
        warnings.warn(msg)
        print("WARNING: " + msg, file=sys.stderr)


def extensions():
    """The extension modules, with their Cython/Python sources (translated in build_ext)."""
    if MODE == "no":
        return []
    from setuptools import Extension

    trace = os.environ.get("WSFAST_CYTHON_TRACE") == "1"
    macros = [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")] if trace else []
    args = ["-O3"] if os.name != "nt" else []
    exts = []
    for name in KERNELS:
        exts.append(Extension(f"wsfast.{name}", [os.path.join("wsfast", name + ".pyx")],
                              define_macros=macros, extra_compile_args=args,
                              **(zlib_options() if name == "_inflate" else {})))
    # Pure-Python modules compiled as they are, under another name (see compile_pure).
    for name, source in PURE_COMPILED.items():
        opts = zlibng_options(macros) if name == "_inflate_ng" else {"define_macros": macros}
        exts.append(Extension(f"wsfast.{name}", [os.path.join("wsfast", source)],
                              extra_compile_args=args, **opts))
    if ONLY:
        exts = [e for e in exts if _short(e) in ONLY]
    return exts


def _short(ext):
    """An extension's name under the package: "_mask", "sync._connection"."""
    return ext.name.split(".", 1)[1]


def cythonize_all(exts):
    from Cython.Build import cythonize

    trace = os.environ.get("WSFAST_CYTHON_TRACE") == "1"
    pyx = [e for e in exts if _short(e) not in PURE_COMPILED]
    translated = cythonize(pyx, compiler_directives={"language_level": "3", "linetrace": trace},
                           annotate=os.environ.get("WSFAST_ANNOTATE") == "1", nthreads=os.cpu_count() or 0)
    # Keep the Extension objects build_ext has finalized; only their sources change.
    by_name = {e.name: e for e in translated}
    pure = {}
    for e in exts:
        short = _short(e)
        if short in PURE_COMPILED:
            pure[short] = (e, compile_pure(short, PURE_COMPILED[short], trace))
        else:
            e.sources = by_name[e.name].sources
    for short, (e, (out, proc)) in pure.items():  # the Cython runs go side by side
        if proc.wait() != 0:
            raise RuntimeError(f"cython failed on wsfast/{PURE_COMPILED[short]} (exit {proc.returncode})")
        e.sources = [out]
    return exts


def zlib_options():
    """How _inflate finds zlib. By default the system's: Linux (zlib headers are in the
    manylinux/musllinux images) and macOS (in the SDK) have it. Windows has no zlib for C
    builds: set ZLIB_ROOT to a prefix with include/zlib.h and lib/zlib.lib, e.g. vcpkg's
    ``vcpkg install zlib:x64-windows-static-md`` -> <vcpkg>/installed/x64-windows-static-md
    (static, so the wheel needs no zlib DLL; [tool.cibuildwheel.windows] does this).
    """
    opts = {"libraries": ["zlib" if os.name == "nt" else "z"]}
    root = os.environ.get("ZLIB_ROOT")
    if root:
        opts["include_dirs"] = [os.path.join(root, "include")]
        opts["library_dirs"] = [os.path.join(root, "lib")]
    return opts


def zlibng_options(macros):
    """How _inflate_ng links zlib-ng: statically, from ZLIBNG_ROOT (a prefix with
    include/zlib-ng.h and lib/libz-ng.a, or lib/zlib-ng.lib on Windows), with WSFAST_ZLIB_NG
    defined so wsfast/_zapi.h maps the kernel's calls to the zng_* API. On Linux the archive's
    symbols stay out of the extension's exports."""
    lib = os.path.join(ZLIBNG_ROOT, "lib", "zlib-ng.lib" if os.name == "nt" else "libz-ng.a")
    opts = {"include_dirs": [os.path.join(ZLIBNG_ROOT, "include")], "extra_objects": [lib],
            "define_macros": macros + [("WSFAST_ZLIB_NG", "1")]}
    if sys.platform.startswith("linux"):
        opts["extra_link_args"] = ["-Wl,--exclude-libs,ALL"]
    return opts


def compile_pure(name, source, trace):
    """Compile wsfast/<source> (pure Python) *as* wsfast.<name>, typed by wsfast/<name>.pxd.

    One readable implementation, two builds (the aiohttp reader_py/reader_c technique).
    Always regenerated, so an edit to the .pxd alone is never missed. Also compiles a .pyx
    under a second name (_inflate.pyx as _inflate_ng). Returns the C file's path and the
    running Cython process.
    """
    import subprocess

    out = os.path.join("wsfast", *name.split(".")) + ".c"
    directives = IN_PLACE_DIRECTIVES if name in IN_PLACE else KERNEL_DIRECTIVES
    cmd = [sys.executable, "-m", "cython", "-3", "--module-name", f"wsfast.{name}"]
    for d in directives + [f"linetrace={trace}"]:
        cmd += ["-X", d]
    cmd += [os.path.join("wsfast", source), "-o", out]
    if os.environ.get("WSFAST_ANNOTATE") == "1":
        cmd.insert(3, "-a")
    return out, subprocess.Popen(cmd)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
