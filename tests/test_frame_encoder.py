"""FrameEncoder: both builds produce the same exact frames (RFC 6455 §5.2, §5.3)."""

from __future__ import annotations

import importlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import MASK, frame

REQUIRE = os.environ.get("WSFAST_REQUIRE_EXTENSIONS", "") not in ("", "0")


def _load(name):
    try:
        return importlib.import_module(name).FrameEncoder
    except ImportError:
        if REQUIRE:
            raise
        pytest.skip(f"{name} is not built")


@pytest.fixture(params=["wsfast._frame_py", "wsfast._frame"])
def Encoder(request):
    return _load(request.param)


def fixed(n):
    return MASK * (n // 4)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 65537, 300000])
@pytest.mark.parametrize("b0", [0x81, 0x82, 0x01, 0x80, 0x88, 0x89, 0xC1])
def test_exact_frames(Encoder, size, b0):
    payload = bytes(i * 7 & 0xFF for i in range(size))
    fin, rsv, opcode = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F
    assert Encoder(False).encode(b0, payload) == frame(opcode, payload, fin=fin, rsv=rsv, mask=None)
    assert Encoder(True, fixed).encode(b0, payload) == frame(opcode, payload, fin=fin, rsv=rsv, mask=MASK)
    header = Encoder(False).header(b0, size)
    assert header + payload == frame(opcode, payload, fin=fin, rsv=rsv, mask=None)


def test_keys_come_from_the_pool_in_order(Encoder):
    pool = bytes(range(256)) * 16
    enc = Encoder(True, lambda n: pool[:n])
    keys = [enc.encode(0x82, b"")[2:6] for _ in range(1025)]
    assert keys[:3] == [b"\x00\x01\x02\x03", b"\x04\x05\x06\x07", b"\x08\x09\x0a\x0b"]
    assert keys[1024] == keys[0]  # refilled after 4096 bytes


def test_default_keys_are_random(Encoder):
    enc = Encoder(True)
    keys = {enc.encode(0x81, b"x")[2:6] for _ in range(64)}
    assert len(keys) > 60


def test_bad_arguments(Encoder):
    with pytest.raises(TypeError):
        Encoder(False).encode(0x81, "text")
    with pytest.raises(TypeError):
        Encoder(False).encode(0x81, bytearray(b"x"))
    with pytest.raises(ValueError):
        Encoder(False).encode(256, b"")
    with pytest.raises(ValueError):
        Encoder(True).header(0x82, 5)
    with pytest.raises(ValueError):
        Encoder(False).header(0x82, -1)
    with pytest.raises(ValueError):
        Encoder(True, lambda n: b"short").encode(0x81, b"x")


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=2000), b0=st.integers(0, 255), masked=st.booleans())
def test_twins_agree(payload, b0, masked):
    py = _load("wsfast._frame_py")
    try:
        c = importlib.import_module("wsfast._frame").FrameEncoder
    except ImportError:
        if REQUIRE:
            raise
        return
    assert py(masked, fixed).encode(b0, payload) == c(masked, fixed).encode(b0, payload)
