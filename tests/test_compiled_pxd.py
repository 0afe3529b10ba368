"""The modules compiled in place (wsfast._env.COMPILED_IN_PLACE) and their augmenting .pxd files.

A .pxd that names an attribute the source no longer sets, or misses one the source sets,
still compiles and still works (``__dict__`` takes the undeclared ones), so only these checks
catch the drift: the attributes each class assigns to ``self`` are exactly the ones its .pxd
declares. Also: setup.py and _env.py list the same modules, each build loads what it says,
and the compiled classes behave like the source's where they could differ (weak references,
undeclared attributes, Python subclasses).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

import wsfast
from wsfast import _env, _speedups
from wsfast.connection import ClientConnection, ServerConnection
from wsfast.handler import Handler, Transport, WebSocket

PKG = Path(wsfast.__file__).parent
ROOT = PKG.parent

#: Attributes a class sets on purpose outside its .pxd (kept in ``__dict__``): none today.
UNDECLARED: Dict[Tuple[str, str], Set[str]] = {}


def assigned(source: Path, classes: List[str]) -> Dict[str, Set[str]]:
    """``self.<name>`` targets of assignments in each class, without those a base in
    ``classes`` already sets."""
    tree = ast.parse(source.read_text())
    found: Dict[str, Set[str]] = {}
    bases: Dict[str, List[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in classes:
            bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in classes]
            names = set()
            for sub in ast.walk(node):
                targets: List[ast.expr] = []
                if isinstance(sub, ast.Assign):
                    targets = sub.targets
                elif isinstance(sub, (ast.AnnAssign, ast.AugAssign)):
                    targets = [sub.target]
                for t in targets:
                    for tt in ast.walk(t):
                        if isinstance(tt, ast.Attribute) and isinstance(tt.value, ast.Name) and tt.value.id == "self":
                            names.add(tt.attr)
            found[node.name] = names
    for name, bs in bases.items():
        for b in bs:
            found[name] -= found[b]
    return found


def declared(pxd: Path) -> Dict[str, Set[str]]:
    """``cdef public object a, b`` names per ``cdef class`` of an augmenting .pxd."""
    out: Dict[str, Set[str]] = {}
    current = None
    for line in pxd.read_text().splitlines():
        m = re.match(r"cdef class (\w+)", line)
        if m:
            current = m.group(1)
            out[current] = set()
            continue
        m = re.match(r"\s+cdef public object (.+)$", line)
        if m and current:
            out[current] |= {n.strip() for n in m.group(1).split(",")}
    return out


def pxd_bases(pxd: Path) -> Dict[str, str]:
    """``cdef class X(Base)``: X -> Base, for the classes of ``pxd`` with a declared base."""
    return dict(re.findall(r"^cdef class (\w+)\((\w+)\)", pxd.read_text(), re.M))


def all_declared() -> Dict[str, Set[str]]:
    """Every slot of every compiled class, its bases' included (class names are unique
    across the .pxd files)."""
    own: Dict[str, Set[str]] = {}
    bases: Dict[str, str] = {}
    for pxd in PKG.rglob("*.pxd"):
        own.update(declared(pxd))
        bases.update(pxd_bases(pxd))
    out = {}
    for cls in own:
        names, c = set(own[cls]), cls
        while c in bases:
            c = bases[c]
            names |= own.get(c, set())
        out[cls] = names
    return out


#: (module under wsfast, source, .pxd) of the modules compiled in place with declarations
#: (sync/_connection.py is compiled plainly: no .pxd, nothing to compare).
WITH_PXD = [
    (m, src, src.with_suffix(".pxd"))
    for m in (n.split(".", 1)[1] for n in _env.COMPILED_IN_PLACE)
    for src in [PKG.joinpath(*m.split(".")).with_suffix(".py")]
    if src.with_suffix(".pxd").exists()
]
pxd_modules = pytest.mark.parametrize("module, source, pxd", WITH_PXD, ids=[m for m, _, _ in WITH_PXD])


@pxd_modules
def test_pxd_declares_exactly_what_the_source_assigns(module: str, source: Path, pxd: Path) -> None:
    decl = declared(pxd)  # (_sockio.pxd types a function only: nothing to compare)
    got = assigned(source, list(decl))
    everything = all_declared()
    for cls, names in decl.items():
        assert cls in got, f"{pxd.name} declares {cls}, which {source.name} does not define"
        # a base declared in another .pxd (loop._Conn on _nbio's transport) holds its own
        base = pxd_bases(pxd).get(cls)
        inherited = everything.get(base, set()) if base and base not in decl else set()
        expected = got[cls] - UNDECLARED.get((module, cls), set()) - inherited
        assert names - expected == set(), f"{cls}: declared in {pxd.name}, never set in {source.name}"
        assert expected - names == set(), f"{cls}: set in {source.name}, missing from {pxd.name}"


def test_setup_and_env_list_the_same_modules() -> None:
    text = (ROOT / "setup.py").read_text()
    m = re.search(r"^IN_PLACE = (\[.*\])$", text, re.M)
    assert m, "setup.py has no IN_PLACE list"
    assert ["wsfast." + n for n in ast.literal_eval(m.group(1))] == list(_env.COMPILED_IN_PLACE)


def test_in_place_modules_keep_python_indexing() -> None:
    """The kernels are compiled without bounds checks and negative-index wrapping; the
    modules compiled in place are ordinary Python (``out[-1]``, IndexError) and must not be:
    with wraparound off, ``out[-1]`` on a list reads before its items (a crash)."""
    text = (ROOT / "setup.py").read_text()
    m = re.search(r"^IN_PLACE_DIRECTIVES = (\[.*\])$", text, re.M)
    assert m, "setup.py has no IN_PLACE_DIRECTIVES list"
    directives = ast.literal_eval(m.group(1))
    for off in ("boundscheck=False", "wraparound=False", "cdivision=True"):
        assert off not in directives
    assert "directives = IN_PLACE_DIRECTIVES if name in IN_PLACE else KERNEL_DIRECTIVES" in text


def test_each_build_loads_what_it_reports() -> None:
    import importlib

    flags = [_env.is_compiled(importlib.import_module(n)) for n in _env.COMPILED_IN_PLACE]
    if _env.NO_EXTENSIONS:
        assert flags == [False] * len(flags)
        assert _speedups.core_implementation() == "python"
    elif _env.REQUIRE_EXTENSIONS:
        assert flags == [True] * len(flags)
        assert _speedups.core_implementation() == "cython"
    else:
        assert _speedups.core_implementation() in ("cython", "python")


def test_no_extensions_loads_the_sources_in_a_fresh_process() -> None:
    code = (
        f"import importlib, wsfast._speedups as s; print(s.core_implementation());"
        f"[print(importlib.import_module(n).__file__) for n in {_env.COMPILED_IN_PLACE!r}]"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**_clean_env(), "WSFAST_NO_EXTENSIONS": "1"},
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out[0] == "python", out
    assert [Path(f).name for f in out[1:]] == [n.rpartition(".")[2] + ".py" for n in _env.COMPILED_IN_PLACE]


def _clean_env() -> Dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("WSFAST_")}


class _Quiet(Transport):
    def write(self, chunks: List[bytes]) -> None:
        self.sent = chunks


def test_classes_behave_alike_in_both_builds() -> None:
    conn = ServerConnection()
    ws = WebSocket(conn, Handler(), _Quiet())
    # weak references (``__weakref__`` in the .pxd) and undeclared attributes (``__dict__``)
    assert weakref.ref(ws)() is ws and weakref.ref(conn)() is conn
    ws.something_new = 1  # type: ignore[attr-defined]
    conn.something_new = 2  # type: ignore[attr-defined]
    assert (ws.something_new, conn.something_new) == (1, 2)  # type: ignore[attr-defined]
    # a client has no ``request`` attribute at all, as in the source
    assert not hasattr(ClientConnection("h"), "request")
    assert conn.request is None

    # Python subclasses of the compiled driver work (the client modes' ClientWebSocket is one)
    class Mine(WebSocket):
        extra = "x"

    mine = Mine(ServerConnection(), Handler(), _Quiet())
    assert mine.extra == "x" and isinstance(mine, WebSocket) and mine.messages_sent == 0

    # the non-blocking transport (compiled with slots) and a Python subclass of it
    import socket

    from wsfast._nbio import NonBlockingSocketTransport

    class Spin(NonBlockingSocketTransport):
        flag = "class attribute"

    a, b = socket.socketpair()
    try:
        t = Spin(a, high_water=10, low_water=5)
        assert weakref.ref(t)() is t and t.flag == "class attribute" and isinstance(t, Transport)
        t.own = 3  # type: ignore[attr-defined]
        t.write([b"abc"])
        assert (t.own, t.bytes_sent, b.recv(10)) == (3, 3, b"abc")  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="low_water"):
            Spin(a, high_water=1, low_water=5)
    finally:
        a.close()
        b.close()


def test_no_subclass_shadows_a_slot_with_a_class_attribute() -> None:
    """A class attribute named like a slot of a compiled base (``closed = False`` in a
    subclass of the non-blocking transport) would hide the slot from Python code, which then
    reads and writes the subclass's value while the compiled base reads the slot: two
    attributes where the source has one. Every class of the package, both builds."""
    import importlib
    import inspect
    import pkgutil

    slots = all_declared()
    bad = []
    seen = 0
    for info in pkgutil.walk_packages(wsfast.__path__, "wsfast."):
        if info.name.endswith("__main__"):
            continue
        try:
            mod = importlib.import_module(info.name)
        except ImportError:
            continue  # an optional accelerator or peer that is not installed
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != mod.__name__:
                continue
            compiled = [b.__name__ for b in cls.__mro__[1:] if b.__name__ in slots and b.__module__.startswith("wsfast")]
            if not compiled:
                continue
            seen += 1
            names = set().union(*(slots[b] for b in compiled))
            if cls.__name__ in slots:  # a compiled class itself: only what its source adds
                names -= slots[cls.__name__]
            bad += [f"{cls.__module__}.{cls.__qualname__}.{n}" for n in set(vars(cls)) & names]
    assert seen >= 6  # ClientWebSocket, the transports of the client modes and the loop...
    assert bad == []


def test_compiled_modules_are_not_older_than_their_source() -> None:
    """An edit to connection.py (or the others) without a rebuild leaves the old compiled
    module running: fail loudly rather than test stale code."""
    import importlib

    for name in _env.COMPILED_IN_PLACE:
        mod = importlib.import_module(name)
        if not _env.is_compiled(mod):
            continue
        so = Path(mod.__file__ or "")
        source = so.parent / (name.rpartition(".")[2] + ".py")
        pxd = source.with_suffix(".pxd")
        newest = max(source.stat().st_mtime, pxd.stat().st_mtime if pxd.exists() else 0.0)
        assert newest <= so.stat().st_mtime, f"{source.name} changed after {so.name} was built: pip install -e ."


def _methods(pxd: Path) -> Dict[str, Set[str]]:
    """``cdef``/``cpdef`` method names per class of an augmenting .pxd, as "cdef name" or
    "cpdef name"."""
    out: Dict[str, Set[str]] = {}
    current = None
    for line in pxd.read_text().splitlines():
        m = re.match(r"cdef class (\w+)", line)
        if m:
            current = out.setdefault(m.group(1), set())
            continue
        m = re.match(r"\s+(cp?def) (?:\w+ )?(\w+)\(self", line)
        if m and current is not None:
            current.add(f"{m.group(1)} {m.group(2)}")
    return out


@pxd_modules
def test_declared_methods_exist_and_cdef_ones_stay_internal(module: str, source: Path, pxd: Path) -> None:
    assert len(WITH_PXD) == 5  # connection, handler, _sockio, _nbio, loop._loop
    functions = re.findall(r"^cpdef \w+ (\w+)\(", pxd.read_text(), re.M)
    tree_text = source.read_text()
    for fn in functions:  # module-level functions (_sockio.blocking_step)
        assert f"\ndef {fn}(" in tree_text, f"{pxd.name}: {fn} is not defined in {source.name}"
    tree = ast.parse(source.read_text())
    defined = {
        node.name: {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }
    others = [p for p in PKG.rglob("*.py") if p != source]
    for cls, methods in _methods(pxd).items():
        for decl in methods:
            kind, name = decl.split()
            assert name in defined.get(cls, set()), f"{pxd.name}: {cls}.{name} is not defined in {source.name}"
            if kind == "cdef":
                # A cdef method is invisible to Python: no other module may call or override it.
                # (A module with a method of that name of its own, the parser's _feed, is a
                # user only if it also deals with the class.)
                users = []
                for other in others:
                    text = other.read_text()
                    own = f"def {name}(" in text
                    if (re.search(rf"\.{name}\b", text) and not own) or (own and cls in text):
                        users.append(other.name)
                assert users == [], f"{cls}.{name} is cdef in {pxd.name} but {users} name it"


def test_in_place_finder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.machinery

    find = _env._InPlaceFinder.find_spec
    assert find("wsfast.events", [str(tmp_path)]) is None  # not one of ours
    assert find("wsfast.handler", None) is None  # (a top-level lookup: not ours either)
    assert find("wsfast.handler", [str(tmp_path)]) is None  # no source there: the next finder
    (tmp_path / "handler.py").write_text("")
    monkeypatch.setattr(_env, "NO_EXTENSIONS", True)
    spec = find("wsfast.handler", [str(tmp_path)])
    assert spec is not None and spec.origin == str(tmp_path / "handler.py")
    assert isinstance(spec.loader, importlib.machinery.SourceFileLoader)
    monkeypatch.setattr(_env, "NO_EXTENSIONS", False)  # REQUIRE_EXTENSIONS: the file must exist
    with pytest.raises(ImportError, match="wsfast.handler is not compiled"):
        find("wsfast.handler", [str(tmp_path)])
    (tmp_path / ("handler" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b"")
    assert find("wsfast.handler", [str(tmp_path)]) is None  # present: the usual finders load it
