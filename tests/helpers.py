"""Shared test helpers: frame builders independent of the engine, feeding strategies,
and an in-memory client/server pair."""

from __future__ import annotations

import random
from typing import Iterable, List

from wsfast import ClientConnection, ServerConnection
from wsfast.events import Accepted, Request

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3
MASK = b"\x37\xfa\x21\x3d"  # RFC 6455 §5.7


def mask_bytes(data: bytes, mask: bytes) -> bytes:
    """Reference masking, byte by byte (RFC 6455 §5.3), independent of the kernels."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length: int | None = None,
    length_form: int | None = None,
) -> bytes:
    """Build one frame by hand. ``mask=None`` for an unmasked (server) frame.

    ``length`` overrides the announced length; ``length_form`` forces 7/16/64-bit encoding
    (to build non-minimal lengths).
    """
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv | opcode
    m = 0x80 if mask is not None else 0
    form = length_form
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    if form == 7:
        head = bytes((b0, m | n))
    elif form == 16:
        head = bytes((b0, m | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
    if mask is not None:
        return head + mask + mask_bytes(payload, mask)
    return head + payload


def chunkings(data: bytes, seed: int = 0) -> Iterable[List[bytes]]:
    """The three ways every parser test is fed: whole, byte by byte, random splits."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    rnd = random.Random(seed)
    for _ in range(3):
        out, i = [], 0
        while i < len(data):
            j = i + rnd.randint(1, 9)
            out.append(data[i:j])
            i = j
        yield out


def open_server(**kwargs) -> ServerConnection:
    """A server connection that has accepted a handshake (output drained)."""
    s = ServerConnection(**kwargs)
    c = ClientConnection("example.com", "/", key=KEY)
    s.receive_data(b"".join(c.data_to_send()))
    evs = list(s.events())
    assert isinstance(evs[0], Request)
    s.accept()
    s.data_to_send()
    return s


def open_client(**kwargs) -> ClientConnection:
    """A client connection that has received a 101 (output drained)."""
    c = ClientConnection("example.com", "/", key=KEY, **kwargs)
    s = ServerConnection()
    s.receive_data(b"".join(c.data_to_send()))
    list(s.events())
    s.accept()
    c.receive_data(b"".join(s.data_to_send()))
    evs = list(c.events())
    assert isinstance(evs[0], Accepted), evs
    return c


def pair(client_kwargs=None, server_kwargs=None):
    """A connected client and server, wired in memory (no sockets)."""
    c = ClientConnection("example.com", "/", key=KEY, **(client_kwargs or {}))
    s = ServerConnection(**(server_kwargs or {}))
    s.receive_data(b"".join(c.data_to_send()))
    list(s.events())
    s.accept()
    c.receive_data(b"".join(s.data_to_send()))
    list(c.events())
    return c, s


def transfer(src, dst) -> list:
    """Move src's output into dst and return dst's events."""
    data = b"".join(src.data_to_send())
    if data:
        dst.receive_data(data)
    return list(dst.events())


def feed(conn, chunks) -> list:
    """Feed chunks, return all events and the output written meanwhile (events taken
    one at a time, as an adapter does)."""
    evs = []
    for ch in chunks:
        conn.receive_data(ch)
        evs.extend(conn.events())
    return evs


def out(conn) -> bytes:
    return b"".join(conn.data_to_send())
