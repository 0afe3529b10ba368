"""The augmenting .pxd that compiles _parser.py as _parser_c must not drift from the source:
every name it declares exists in the pure-Python module (aiohttp's reader_c.pxd once kept a
stale declaration; this catches that)."""

from __future__ import annotations

import re
from pathlib import Path

import wsfast._parser as parser

PXD = Path(parser.__file__).with_name("_parser_c.pxd").read_text()


def test_module_level_names_exist():
    names = []
    for line in PXD.splitlines():
        m = re.match(r"cdef (?:int|object) (.+)$", line)
        if m:
            names += [n.strip() for n in m.group(1).split(",")]
    assert "FRAME" in names and "TextMessage" in names
    for name in names:
        assert hasattr(parser, name), name


def test_class_attributes_and_methods_exist():
    p = parser.Parser([], 0x80, 10, 10, False, lambda b: None, lambda b: None)
    body = PXD.split("cdef class Parser:", 1)[1]
    attrs, methods = [], []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("cdef ") and "(" not in line:
            # "cdef [public] <type words> name[, name...]": the names follow the last type word
            decl = line.split(None, 1)[1].replace("public ", "")
            head, _, rest = decl.partition(",")
            attrs.append(head.split()[-1])
            attrs += [n.strip() for n in rest.split(",") if n.strip()]
        m = re.match(r"c?p?def (?:\w+ )?(\w+)\(self", line)
        if m:
            methods.append(m.group(1))
    assert "remaining" in attrs and "_feed" in methods
    for name in attrs:
        assert hasattr(p, name), name
    for name in methods:
        assert callable(getattr(p, name)), name


def test_compiled_build_matches_when_present():
    try:
        import wsfast._parser_c as compiled
    except ImportError:
        return
    for name in ("feed", "discard", "set_extension"):
        assert hasattr(compiled.Parser, name)
