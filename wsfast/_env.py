"""Read once which build the process asked for (no other imports: anything may import it).

``WSFAST_NO_EXTENSIONS=1`` forces the pure-Python twins; ``WSFAST_REQUIRE_EXTENSIONS=1``
turns a missing compiled module into an ImportError.

Two kinds of module have a compiled build. The kernels and the parser are compiled under
their own names (``_mask`` / ``_mask_py``, ``_parser.py`` as ``_parser_c``) and
``wsfast._speedups`` picks one. The modules in ``COMPILED_IN_PLACE`` (the engine and the
adapters' shared driver, see setup.py) are compiled *as themselves*: the extension module sits
next to its ``.py`` source and the import system prefers it, so ``wsfast.connection`` is the
same module, with the same classes, in both builds. Here, a finder first on ``sys.meta_path``
loads those from their ``.py`` source under ``WSFAST_NO_EXTENSIONS=1``, and fails their import
under ``WSFAST_REQUIRE_EXTENSIONS=1`` when the compiled file is missing.
"""

import importlib.machinery
import importlib.util
import os
import sys
from typing import Optional, Sequence

NO_EXTENSIONS = os.environ.get("WSFAST_NO_EXTENSIONS", "") not in ("", "0")
REQUIRE_EXTENSIONS = os.environ.get("WSFAST_REQUIRE_EXTENSIONS", "") not in ("", "0")

if NO_EXTENSIONS and REQUIRE_EXTENSIONS:  # pragma: no cover  (tested in a subprocess)
    raise ImportError("WSFAST_NO_EXTENSIONS and WSFAST_REQUIRE_EXTENSIONS are both set")

#: Pure-Python modules that setup.py also compiles in place (typed by the .pxd beside them).
COMPILED_IN_PLACE = (
    "wsfast.connection",
    "wsfast.handler",
    "wsfast.handshake",
    "wsfast._sockio",
    "wsfast._nbio",
    "wsfast.sync._connection",
    "wsfast.loop._loop",
)


class _InPlaceFinder:
    """``sys.meta_path`` entry for ``COMPILED_IN_PLACE``: the source under NO_EXTENSIONS, a
    check that the compiled file exists under REQUIRE_EXTENSIONS (then the usual finders load
    it). Any other module: None (not ours)."""

    @staticmethod
    def find_spec(
        name: str, path: Optional[Sequence[str]] = None, target: object = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if name not in COMPILED_IN_PLACE or not path:
            return None
        stem = name.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, stem + ".py")
            if not os.path.isfile(source):
                continue
            if NO_EXTENSIONS:
                return importlib.util.spec_from_file_location(name, source)
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                if os.path.isfile(os.path.join(entry, stem + suffix)):
                    return None
            raise ImportError(f"WSFAST_REQUIRE_EXTENSIONS=1, but {name} is not compiled (no extension beside {source})")
        return None


if NO_EXTENSIONS or REQUIRE_EXTENSIONS:  # pragma: no branch  (one build per process: both in CI)
    sys.meta_path.insert(0, _InPlaceFinder)


def is_compiled(module: object) -> bool:
    """True when ``module`` was loaded from an extension (a compiled build), not from source."""
    loader = getattr(getattr(module, "__spec__", None), "loader", None)
    return isinstance(loader, importlib.machinery.ExtensionFileLoader)
