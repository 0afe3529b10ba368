"""Shared machinery of the wsfast fuzz targets (atheris), also imported by the regression tests.

Every target is a function ``target(data: bytes) -> None`` that raises ``Finding`` (or lets an
unexpected exception escape) when an invariant breaks:

- nothing leaves ``receive_data``, ``receive_eof``, ``events()`` or ``data_to_send()`` (the
  engine documents that peer faults never raise; see ``wsfast.connection``);
- no message event follows a ``ConnectionFailed`` (only ``TransportClosed`` may);
- every byte the engine emits after the handshake is a valid frame: it is fed to a fresh engine
  of the other role, which must not fail;
- events pending at any time stay within a small multiple of the message limit.

The build (compiled or pure Python) is chosen by ``WSFAST_NO_EXTENSIONS`` before import.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Tuple

from wsfast import ClientConnection, ServerConnection
from wsfast.connection import Connection
from wsfast.events import (
    BinaryMessage,
    ConnectionFailed,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
    TransportClosed,
)
from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate

#: Limits a target runs with: small (to reach the 1009 paths fast) and the defaults.
SMALL: dict[str, Any] = {"max_message_size": 1024, "max_frame_size": 512, "max_handshake_size": 2048}
DEFAULT: dict[str, Any] = {}

#: Known open engine bugs being fixed by the engine engineer: the harness skips exactly these
#: signatures (``Known`` raised instead of ``Finding``) so CI stays green until the fix lands.
#: The lead removes an entry when its fix is in. Each entry: (exception type name, substring).
KNOWN_SIGNATURES: List[Tuple[str, str]] = []


class Finding(AssertionError):
    """An invariant broke: the input is a bug reproducer."""


def _known(exc: BaseException) -> bool:
    text = str(exc)
    return any(type(exc).__name__ == name and sub in text for name, sub in KNOWN_SIGNATURES)


def chunks(data: bytes, size: int) -> Iterable[bytes]:
    """``data`` in pieces of ``size`` bytes (``size`` >= 1)."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


class Watch:
    """Takes an engine's events and checks the event-level invariants."""

    def __init__(self, conn: Connection, limit: int) -> None:
        self.conn = conn
        self.limit = limit
        self.failed = False
        self.events: List[Event] = []

    def take(self) -> List[Event]:
        """All events now available, checked."""
        conn = self.conn
        out: List[Event] = []
        # Bounded: what the engine holds untaken stays near one message limit whatever the
        # read size (it stops parsing at its event budget and resumes as events are taken).
        # Checked when receive_data returns and each time the iterator starts a new batch.
        self._check_pending(conn._events)
        batch = conn._events
        for ev in conn.events():
            if conn._events is not batch:
                batch = conn._events
                self._check_pending(batch)
            if self.failed and not isinstance(ev, TransportClosed):
                raise Finding(f"event after ConnectionFailed: {ev!r}")
            if isinstance(ev, ConnectionFailed):
                self.failed = True
            out.append(ev)
        self.events.extend(out)
        return out

    def _check_pending(self, evs: Sequence[Event]) -> None:
        pending = sum(len(ev.data) for ev in evs if isinstance(ev, (TextMessage, BinaryMessage)))
        if pending > 2 * max(self.limit, 65536) + 65536:
            raise Finding(f"{pending} bytes of messages pending for a limit of {self.limit}")

    def wire(self) -> bytes:
        """Everything the engine wants to send now."""
        return b"".join(self.conn.data_to_send())


def guarded(fn: object) -> object:
    """Decorator: turn the known open bugs into a silent return (see ``KNOWN_SIGNATURES``)."""

    def run(data: bytes) -> None:
        try:
            fn(data)  # type: ignore[operator]
        except Finding:
            raise
        except Exception as exc:
            if _known(exc):
                return
            raise

    run.__name__ = getattr(fn, "__name__", "target")
    run.__doc__ = getattr(fn, "__doc__", None)
    return run


def _config(b: int) -> Tuple[dict[str, Any], bool, int]:
    """Decode one configuration byte: limits, compression, read size."""
    limits = SMALL if b & 1 else DEFAULT
    deflate = bool(b & 2)
    size = (1, 7, 64, 1 << 20)[(b >> 2) & 3]
    return limits, deflate, size


def pair(limits: dict[str, Any], deflate: bool) -> Tuple[ClientConnection, ServerConnection]:
    """A client and a server engine through a real opening handshake (OPEN on both)."""
    client = ClientConnection(
        "localhost", "/", extensions=[ClientPerMessageDeflate()] if deflate else [], **limits
    )
    server = ServerConnection(extensions=[ServerPerMessageDeflate()] if deflate else [], **limits)
    server.receive_data(b"".join(client.data_to_send()))
    (req,) = list(server.events())
    assert isinstance(req, Request)
    server.accept()
    client.receive_data(b"".join(server.data_to_send()))
    list(client.events())
    return client, server


def _peer_checks(peer: Connection, wire: bytes, limits: dict[str, Any], who: str) -> None:
    """Our output, parsed by an engine of the other role, must never be a protocol fault."""
    if not wire:
        return
    peer.receive_data(wire)
    for ev in peer.events():
        if isinstance(ev, ConnectionFailed):
            raise Finding(f"{who} emitted invalid frames: the peer failed with {ev!r}")
        if isinstance(ev, Ping):
            pass
    peer.data_to_send()


def frames_target(data: bytes, role: str) -> None:
    """Feed arbitrary bytes, after a handshake, to one side; check both sides' invariants."""
    if not data:
        return
    limits, deflate, size = _config(data[0])
    body = data[1:]
    client, server = pair(limits, deflate)
    victim: Connection
    other: Connection
    if role == "server":
        victim, other = server, client
    else:
        victim, other = client, server
    limit = limits.get("max_message_size", 1 << 20)
    watch = Watch(victim, limit)
    for piece in chunks(body, size):
        victim.receive_data(piece)
        watch.take()
        _peer_checks(other, watch.wire(), limits, role)
    victim.receive_eof()
    watch.take()
    _peer_checks(other, watch.wire(), limits, role)


def server_handshake_target(data: bytes) -> None:
    """Arbitrary bytes as a client's opening request (and what follows it)."""
    if not data:
        return
    limits, deflate, size = _config(data[0])
    server = ServerConnection(
        subprotocols=["chat", "v2"], extensions=[ServerPerMessageDeflate()] if deflate else [], **limits
    )
    watch = Watch(server, limits.get("max_message_size", 1 << 20))
    answered = False
    for piece in chunks(data[1:], size):
        server.receive_data(piece)
        for ev in watch.take():
            if isinstance(ev, Request) and not answered:
                answered = True
                if data[0] & 0x10:
                    server.reject(403, body=b"no")
                else:
                    server.accept()
        watch.wire()
    server.receive_eof()
    watch.take()
    watch.wire()


def client_handshake_target(data: bytes) -> None:
    """Arbitrary bytes as the server's response to a client's request."""
    if not data:
        return
    limits, deflate, size = _config(data[0])
    client = ClientConnection(
        "localhost",
        "/chat",
        subprotocols=["chat"],
        extensions=[ClientPerMessageDeflate()] if deflate else [],
        key="dGhlIHNhbXBsZSBub25jZQ==",
        **limits,
    )
    client.data_to_send()
    watch = Watch(client, limits.get("max_message_size", 1 << 20))
    for piece in chunks(data[1:], size):
        client.receive_data(piece)
        watch.take()
        watch.wire()
    client.receive_eof()
    watch.take()
    watch.wire()


# ---------------------------------------------------------------- differential (websockets)


def _messages(events: Sequence[Event]) -> List[Tuple[str, bytes]]:
    out: List[Tuple[str, bytes]] = []
    for ev in events:
        if isinstance(ev, TextMessage):
            out.append(("text", ev.data.encode("utf-8")))
        elif isinstance(ev, BinaryMessage):
            out.append(("binary", bytes(ev.data)))
        elif isinstance(ev, Ping):
            out.append(("ping", bytes(ev.data)))
        elif isinstance(ev, Pong):
            out.append(("pong", bytes(ev.data)))
    return out


def _ws_messages(frames: Sequence[object]) -> List[Tuple[str, bytes]]:
    from websockets.frames import Opcode

    out: List[Tuple[str, bytes]] = []
    kind: Optional[str] = None
    parts: List[bytes] = []
    for f in frames:
        op = f.opcode  # type: ignore[attr-defined]
        if op in (Opcode.TEXT, Opcode.BINARY):
            kind = "text" if op is Opcode.TEXT else "binary"
            parts = [f.data]  # type: ignore[attr-defined]
        elif op is Opcode.CONT:
            parts.append(f.data)  # type: ignore[attr-defined]
        elif op is Opcode.PING:
            out.append(("ping", bytes(f.data)))  # type: ignore[attr-defined]
            continue
        elif op is Opcode.PONG:
            out.append(("pong", bytes(f.data)))  # type: ignore[attr-defined]
            continue
        else:
            continue
        if f.fin and kind is not None:  # type: ignore[attr-defined]
            out.append((kind, b"".join(parts)))
            kind = None
    return out


def _script(data: bytes) -> List[Tuple[int, bytes, bool]]:
    """Decode fuzz bytes into a valid send script: (kind, payload, fin) steps.

    kind: 0 text, 1 binary, 2 ping, 3 pong. A data frame with fin=False starts (or continues)
    a fragmented message whose later frames keep its kind; control frames may interleave.
    """
    steps: List[Tuple[int, bytes, bool]] = []
    frag_kind: Optional[int] = None
    i = 0
    while i + 2 <= len(data) and len(steps) < 64:
        op, n = data[i], data[i + 1]
        payload = data[i + 2 : i + 2 + n]
        i += 2 + n
        kind = op % 4
        fin = True
        if kind < 2:
            if frag_kind is not None:
                kind = frag_kind
            fin = not (op & 4)
            frag_kind = None if fin else kind
        else:
            payload = payload[:125]
        if kind == 0:
            payload = payload.decode("latin-1").encode("utf-8")  # valid UTF-8 in every frame
        steps.append((kind, payload, fin))
    if frag_kind is not None:
        steps.append((frag_kind, b"", True))
    return steps


def differential_target(data: bytes) -> None:
    """Valid streams: what websockets' sans-IO protocols parse, wsfast parses identically."""
    from websockets.client import ClientProtocol
    from websockets.frames import Opcode
    from websockets.protocol import OPEN
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri

    if not data:
        return
    size = (1, 7, 64, 1 << 20)[data[0] & 3]
    deflate = bool(data[0] & 4)
    script = _script(data[1:])

    def ws_ext() -> list:  # type: ignore[type-arg]
        # What a default wsfast negotiation agrees on: context takeover, 15-bit windows.
        from websockets.extensions.permessage_deflate import PerMessageDeflate

        return [PerMessageDeflate(False, False, 15, 15)] if deflate else []

    # 1. websockets' client sends; websockets' server and wsfast's server both parse.
    ws_client = ClientProtocol(parse_uri("ws://localhost/"), state=OPEN, max_size=None)
    ws_client.extensions = ws_ext()
    ws_server = ServerProtocol(state=OPEN, max_size=None)
    ws_server.extensions = ws_ext()
    _, ours = pair({}, deflate)
    started = False
    for kind, payload, fin in script:
        if kind < 2:
            opcode = Opcode.CONT if started else (Opcode.TEXT if kind == 0 else Opcode.BINARY)
            if opcode is Opcode.CONT:
                ws_client.send_continuation(payload, fin)
            elif opcode is Opcode.TEXT:
                ws_client.send_text(payload, fin)
            else:
                ws_client.send_binary(payload, fin)
            started = not fin
        elif kind == 2:
            ws_client.send_ping(payload)
        else:
            ws_client.send_pong(payload)
    wire = b"".join(ws_client.data_to_send())
    for piece in chunks(wire, size):
        ws_server.receive_data(piece)
        ours.receive_data(piece)
    theirs = _ws_messages(ws_server.events_received())
    mine = _messages(list(ours.events()))
    if ours.failure is not None or ws_server.state is not OPEN:
        raise Finding(f"valid stream failed: wsfast {ours.failure!r}, websockets state {ws_server.state!r}")
    if theirs != mine:
        raise Finding(f"wsfast server parsed {mine!r}, websockets {theirs!r}")
    # 2. wsfast's client sends; websockets' server parses; it must see exactly what was sent.
    client, _ = pair({}, deflate)
    ws_server2 = ServerProtocol(state=OPEN, max_size=None)
    ws_server2.extensions = ws_ext()
    sent: List[Tuple[str, bytes]] = []
    parts: List[bytes] = []
    started = False
    for kind, payload, fin in script:
        if kind < 2:
            if kind == 0:
                client.send_text(payload.decode("utf-8"), fin)
            else:
                client.send_binary(payload, fin)
            parts.append(payload)
            if fin:
                sent.append(("text" if kind == 0 else "binary", b"".join(parts)))
                parts = []
        elif kind == 2:
            client.send_ping(payload)
            sent.append(("ping", payload))
        else:
            client.send_pong(payload)
            sent.append(("pong", payload))
    ws_server2.receive_data(b"".join(client.data_to_send()))
    got = _ws_messages(ws_server2.events_received())
    if got != sent:
        raise Finding(f"websockets parsed {got!r} from wsfast's client, which sent {sent!r}")


def run_targets() -> List[Tuple[str, object]]:
    """The targets by name (for fuzz/run.py and the regression tests)."""
    return [
        ("server_handshake", guarded(server_handshake_target)),
        ("client_handshake", guarded(client_handshake_target)),
        ("server_frames", guarded(lambda d: frames_target(d, "server"))),
        ("client_frames", guarded(lambda d: frames_target(d, "client"))),
        ("differential", guarded(differential_target)),
    ]
