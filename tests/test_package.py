"""Package-level rules: the engine is sans-IO, and the public API is exactly what __all__ says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import wsfast

PKG = Path(wsfast.__file__).parent
FORBIDDEN = {"socket", "selectors", "threading", "ssl", "time", "asyncio", "select"}
#: Top-level modules of the adapter layer (they own IO); everything else at the top level is
#: the engine or its kernels. Subpackages (sync/, clients/, loop/, asyncio/) are adapters too.
ADAPTER_MODULES = {"_net", "_options", "_modes", "_sockio", "_nbio", "handler", "cli", "__main__", "uvicorn"}


def imported_modules(path: Path) -> set[str]:
    text = path.read_text()
    if path.suffix == ".py":
        names = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        return names
    # .pyx/.pxd: Cython syntax; a line-based look at (c)import statements is enough here
    return set(re.findall(r"^\s*(?:from|c?import)\s+([A-Za-z_]\w*)", text, re.M))


def test_engine_is_sans_io():
    sources = sorted([*PKG.glob("*.py"), *PKG.glob("*.pyx"), *PKG.glob("*.pxd")])
    assert any(p.name == "connection.py" for p in sources)
    engine = [p for p in sources if p.stem not in ADAPTER_MODULES]
    for path in engine:
        bad = imported_modules(path) & FORBIDDEN
        assert not bad, f"{path.name} imports {sorted(bad)}: the engine must stay sans-IO"


def test_engine_does_not_import_adapters():
    """Imports only point down: no engine module imports an adapter module."""
    adapters = ADAPTER_MODULES | {"sync", "clients", "loop", "asyncio"}
    for path in sorted(PKG.glob("*.py")):
        if path.stem in ADAPTER_MODULES:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                assert node.module.split(".")[0] not in adapters, f"{path.name} imports .{node.module}"


def test_all_is_exact():
    exported = set(wsfast.__all__)
    assert len(exported) == len(wsfast.__all__), "duplicates in __all__"
    for name in exported:
        assert hasattr(wsfast, name), name
    public = {n for n in vars(wsfast) if not n.startswith("_") and not isinstance(getattr(wsfast, n), type(wsfast))}
    assert public - exported == set(), f"public but not in __all__: {public - exported}"


def test_events_and_exceptions_reexported():
    from wsfast import events, exceptions

    for mod in (events, exceptions):
        for name in mod.__all__:
            assert getattr(wsfast, name, None) is getattr(mod, name), name
