"""Checks shared by the interop tests."""

from __future__ import annotations

from typing import List, Optional, Tuple

from wsfast import BinaryMessage, Pong, TextMessage
from wsfast.permessage_deflate import PerMessageDeflate

from .driver import Client, message_compression
from .peers import KiB, SIZES, binary_payload, split, text_payload

TEXT, BINARY = 1, 2


def assert_same(got, expected, what: str) -> None:
    """Exact equality, without pytest diffing megabytes on failure."""
    if got == expected:
        return
    n = min(len(got), len(expected))
    first = next((i for i in range(n) if got[i] != expected[i]), n)
    raise AssertionError(
        f"{what}: got {type(got).__name__} of length {len(got)}, expected {len(expected)}; "
        f"first difference at index {first}: {got[first:first + 16]!r} vs {expected[first:first + 16]!r}"
    )


def suite() -> List[Tuple[int, object, int]]:
    """The messages every wsfast client sends: ``(opcode, payload, fragments)``."""
    messages: List[Tuple[int, object, int]] = []
    for size in SIZES:
        messages.append((TEXT, text_payload(size), 1))
        messages.append((BINARY, binary_payload(size), 1))
    # Fragmented sends: the echo comes back as one message.
    messages.append((TEXT, text_payload(100 * KiB, seed=1), 4))
    messages.append((BINARY, binary_payload(100 * KiB, seed=1), 3))
    messages.append((TEXT, text_payload(1000, seed=2), 2))
    messages.append((BINARY, binary_payload(1, seed=2), 2))  # an empty first fragment
    return messages


def exchange(client: Client, messages=None) -> List[Tuple[int, int]]:
    """Send each message from the wsfast client, check its echo is exact; return the
    ``(opcode, size)`` of each echo, in order."""
    if messages is None:
        messages = suite()
    sent: List[Tuple[int, int]] = []
    for i, (opcode, payload, fragments) in enumerate(messages):
        send = client.send_text if opcode == TEXT else client.send_binary
        parts = split(payload, fragments)
        for j, part in enumerate(parts):
            send(part, fin=j == len(parts) - 1)
            if j == 0 and len(parts) > 1:
                client.conn.send_ping(b"between fragments")  # control frames may interleave (§5.4)
        echo = client.recv()
        kind = TextMessage if opcode == TEXT else BinaryMessage
        assert isinstance(echo, kind), f"message #{i}: sent {kind.__name__}, echo is {echo!r:.200}"
        assert_same(echo.data, payload, f"echo of message #{i} ({kind.__name__}, {fragments} fragment(s))")
        size = len(payload.encode()) if opcode == TEXT else len(payload)
        sent.append((opcode, size))
    pongs = [e.data for e in client.events if isinstance(e, Pong)]
    assert pongs == [b"between fragments"] * sum(1 for m in messages if m[2] > 1), pongs
    return sent


def check_compression(raw: bytes, sent: List[Tuple[int, int]], threshold: Optional[int], who: str) -> None:
    """The data messages in ``raw`` are ``sent`` in order; with a ``threshold``, exactly the
    ones at least that big have RSV1 set (``None``: don't check RSV1)."""
    on_wire = message_compression(raw)
    assert [op for op, _ in on_wire] == [op for op, _ in sent], f"{who}: opcodes on the wire {on_wire}"
    if threshold is None:
        return
    expected = [(op, size >= threshold) for op, size in sent]
    assert on_wire == expected, f"{who}: (opcode, RSV1) on the wire {on_wire}, expected {expected} (sizes {sent})"


def deflate_of(conn) -> PerMessageDeflate:
    assert conn.extensions, "permessage-deflate was not negotiated"
    (ext,) = conn.extensions
    assert isinstance(ext, PerMessageDeflate), ext
    return ext


def params_of(ext: PerMessageDeflate) -> dict:
    return {
        "local_no_context_takeover": ext.local_no_context_takeover,
        "remote_no_context_takeover": ext.remote_no_context_takeover,
        "local_max_window_bits": ext.local_max_window_bits,
        "remote_max_window_bits": ext.remote_max_window_bits,
    }


def parse_extension_header(value: Optional[str]) -> dict:
    """``permessage-deflate; a; b=10`` → ``{"a": None, "b": "10"}`` (one extension)."""
    assert value, "no Sec-WebSocket-Extensions header"
    name, *params = [p.strip() for p in value.split(";")]
    assert name == "permessage-deflate", value
    out = {}
    for p in params:
        k, _, v = p.partition("=")
        out[k.strip()] = v.strip().strip('"') or None
    return out
