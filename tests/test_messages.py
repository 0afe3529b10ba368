"""The per-message events behave the same in both builds (wsfast/_messages.py and its
compiled build wsfast._messages_c)."""

from __future__ import annotations

import importlib
import os

import pytest

REQUIRE = os.environ.get("WSFAST_REQUIRE_EXTENSIONS", "") not in ("", "0")


@pytest.fixture(params=["wsfast._messages", "wsfast._messages_c"])
def m(request):
    try:
        return importlib.import_module(request.param)
    except ImportError:
        if REQUIRE:
            raise
        pytest.skip(f"{request.param} is not built")


def test_values_equality_repr_hash(m):
    t = m.TextMessage("héllo")
    assert (t.data, t.final) == ("héllo", True)
    assert t == m.TextMessage("héllo", True) and t != m.TextMessage("héllo", False)
    assert t != m.BinaryMessage(b"h\xc3\xa9llo")
    assert repr(t) == "TextMessage(data='héllo', final=True)"
    assert repr(m.BinaryMessage(b"\x00", False)) == "BinaryMessage(data=b'\\x00', final=False)"
    assert repr(m.Ping(b"p")) == "Ping(data=b'p')" and repr(m.Pong(b"")) == "Pong(data=b'')"
    assert m.Ping(b"a") == m.Ping(b"a") and m.Ping(b"a") != m.Pong(b"a")
    assert len({m.TextMessage("a"), m.TextMessage("a"), m.Ping(b"a")}) == 2
    for ev in (t, m.BinaryMessage(b""), m.Ping(b""), m.Pong(b"")):
        assert isinstance(ev, m.Event)


def test_compiled_events_are_read_only():
    try:
        from wsfast._messages_c import TextMessage
    except ImportError:
        if REQUIRE:
            raise
        pytest.skip("not built")
    t = TextMessage("x")
    with pytest.raises(AttributeError):
        t.data = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        TextMessage(b"not str")  # type: ignore[arg-type]


def test_public_classes_match_active_build():
    import wsfast
    import wsfast._speedups as s

    expected = "wsfast._messages_c" if s.PARSER_IMPLEMENTATION == "cython" else "wsfast._messages"
    assert wsfast.TextMessage.__module__ == expected
    assert issubclass(wsfast.Request, wsfast.Event) and issubclass(wsfast.TextMessage, wsfast.Event)
