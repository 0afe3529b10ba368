"""A WebSocket protocol class for uvicorn, on the wsfast engine.

    uvicorn app:app --ws wsfast.uvicorn:WSFastProtocol
    uvicorn.run(app, ws=WSFastProtocol)   # or ws="wsfast.uvicorn:WSFastProtocol"

uvicorn's HTTP protocol hands an upgrade request over by constructing this class with
``config``/``server_state``/``app_state``, calling ``connection_made(transport)`` and then
``data_received`` with the request head it rebuilt; it then switches the transport to this
protocol (a ``BufferedProtocol``: later reads go into one 256 KiB buffer and every complete
frame of a read is parsed at once). The app runs as an ASGI ``websocket`` task (spec 2.4,
with the ``websocket.http.response`` extension) tracked in ``server_state.tasks``.

The engine (``ServerConnection``) and the shared ``WebSocket`` driver do all framing,
keepalive (``ws_ping_interval``/``ws_ping_timeout`` -> 1011) and close timeouts; this module
only maps ASGI messages to driver calls. ``ws_max_size`` bounds messages (1009 above it);
``ws_per_message_deflate`` negotiates permessage-deflate with 12-bit windows by default
(``wsfast._options.SERVER_DEFAULT_WINDOW_BITS``: ~49 KiB per idle compressed connection
instead of ~189 KiB at 15 bits, uvicorn#1862). Writes go out with ``transport.write`` only.

Denial responses (``websocket.http.response.start`` then ``.body`` messages) are streamed:
the head is written at the end of the event-loop step in which the app sent ``start`` (as
soon as the app awaits anything), and every body chunk is written when it arrives; the
transport is closed after the last one. Framing (RFC 9112 §6.3):

- a body that is complete within that same step (``start`` and the last ``body`` sent back
  to back, as Starlette's ``Response`` does) goes out as one response with the engine's
  ``Content-Length`` (``ServerConnection.reject``);
- otherwise the head carries the app's ``Content-Length`` if it gave one (the body is then
  cut to it: more is a ``RuntimeError``), else no length at all: the body is delimited by
  the connection close (``Connection: close`` is always sent). Close-delimited rather than
  ``Transfer-Encoding: chunked`` because WebSocket clients read non-101 bodies with a length
  or to EOF: the ``websockets`` client and wsfast's own refuse chunked responses. An app
  that fails mid-body gets the transport aborted (RST), so a client cannot take a
  truncated close-delimited body for a complete one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from typing import Any, Deque, Dict, FrozenSet, List, Optional, Tuple
from urllib.parse import unquote

from ._options import ServerOptions, new_server
from ._state import CONNECTING, OPEN
from .asyncio._protocol import AsyncioTransport, WSProtocol
from .events import Request
from .exceptions import WebSocketError
from .handler import DEFER, Decision, Handler, WebSocket
from .handshake import _check_header, _encode_head, _reason_phrase

try:  # uvicorn's own "the client is gone" error (an OSError), which Starlette expects
    from uvicorn.protocols.utils import ClientDisconnected
except ImportError:  # pragma: no cover - uvicorn is optional for importing this module

    class ClientDisconnected(OSError):  # type: ignore[no-redef]
        """The client disconnected."""


__all__ = ["WSFastProtocol", "WSFastWebSocketProtocol", "ClientDisconnected"]

log = logging.getLogger("wsfast.uvicorn")
_access = logging.getLogger("uvicorn.error")

#: Seconds the closing handshake may take before TCP is closed (uvicorn has no setting).
CLOSE_TIMEOUT = 10.0
#: Header names the engine writes itself (taken out of app/default headers).
_OWN_ACCEPT = frozenset(
    {"upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
     "sec-websocket-extensions", "content-length", "transfer-encoding"}
)
_OWN_RESPONSE = frozenset({"transfer-encoding", "connection"})  # Content-Length: see _Denial


class _Denial:
    """A denial response in progress: ``status`` and ``headers`` (app's, checked, without
    Content-Length), ``length`` (the app's Content-Length or None), body ``chunks`` held
    until the head is written; then ``left``: bytes the Content-Length still allows."""

    __slots__ = ("status", "headers", "length", "chunks", "handle", "head_sent", "left")

    def __init__(self, status: int, headers: List[Tuple[str, str]], length: Optional[int]) -> None:
        self.status = status
        self.headers = headers
        self.length = length
        self.chunks: List[bytes] = []
        self.handle: Optional[asyncio.Handle] = None
        self.head_sent = False
        self.left = length

    def head(self) -> bytes:
        """The head for a streamed body (see the module docstring for the framing)."""
        status = self.status
        reason = _reason_phrase(status)
        headers = list(self.headers)
        if self.length is not None and status not in (204, 304):
            headers.append(("Content-Length", str(self.length)))
        headers.append(("Connection", "close"))
        return _encode_head(f"HTTP/1.1 {status} {reason}", headers)


def _denial(message: Dict[str, Any]) -> _Denial:
    """Check a ``websocket.http.response.start`` (RuntimeError: the app's fault -> 500)."""
    status = message["status"]
    if not isinstance(status, int) or not 100 <= status < 600:
        raise RuntimeError("Invalid HTTP status code '%s' in response." % (status,))
    if status < 200:
        raise RuntimeError("Invalid HTTP status code '%d' in response: 1xx is not a denial." % status)
    headers = []
    lengths = set()
    for name, value in _str_headers(message.get("headers", []), _OWN_RESPONSE):
        try:
            _check_header(name, value)
        except ValueError as exc:
            raise RuntimeError(f"Invalid header in response: {exc}") from None
        if name.lower() == "content-length":
            lengths.add(value.strip())
        else:
            headers.append((name, value))
    length = None
    if lengths:
        value = lengths.pop()
        if lengths or not value.isdigit() or not value.isascii():
            raise RuntimeError("Invalid Content-Length in response.")
        length = int(value)
    return _Denial(status, headers, length)


class _WriteTransport(AsyncioTransport):
    """``transport.write`` only, one joined write per event-loop step.

    What the engine wants written in one step (an app answering every message of a read,
    one ``send`` each) is held and goes out as a single ``transport.write``: when the app
    waits in ``receive()`` (``flush``, so an echo's reply costs no extra loop turn), at the
    end of the step otherwise (``call_soon``), and at once past ``FLUSH_SIZE`` bytes, so the
    transport's write watermarks (``pause_writing``) still see a large send at once.
    ``close`` and ``abort`` write what is held first (an unheld write would have reached
    the kernel before them).
    """

    __slots__ = ("_held", "_held_size", "_handle")

    #: Bytes held before they are written at once.
    FLUSH_SIZE = 64 * 1024

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._held: List[bytes] = []
        self._held_size = 0
        self._handle: Optional[asyncio.Handle] = None

    def write(self, chunks: List[bytes]) -> None:
        held = self._held
        held += chunks
        size = self._held_size
        for c in chunks:
            size += len(c)
        if size >= self.FLUSH_SIZE:
            self.flush()
            return
        self._held_size = size
        if self._handle is None:
            self._handle = self.loop.call_soon(self._end_of_step)

    def _end_of_step(self) -> None:
        self._handle = None
        self.flush()

    def flush(self) -> None:
        """Write what is held (one ``transport.write``)."""
        held = self._held
        if not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        self._held_size = 0
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)

    def close(self) -> None:
        self.flush()
        super().close()

    def abort(self) -> None:
        self.flush()  # as unheld writes would have: what the kernel takes still goes out
        t = self.transport
        if t is not None:
            getattr(t, "abort", t.close)()


def _current_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # built outside the loop (uvicorn always builds it inside)
        return asyncio.get_event_loop_policy().get_event_loop()


def _str_headers(raw: Any, skip: FrozenSet[str]) -> List[Tuple[str, str]]:
    out = []
    for name, value in raw:
        n = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        if n.lower() in skip:
            continue
        v = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        out.append((n, v))
    return out


class WSFastProtocol(WSProtocol, Handler):
    """uvicorn's ``--ws`` protocol on wsfast (the protocol and the driver's handler at once)."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: Dict[str, Any],
        _loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or _current_loop()
        self.root_path: str = config.root_path
        self.asgi_version: str = config.asgi_version
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        opts = ServerOptions(
            compression="deflate" if config.ws_per_message_deflate else None,
            max_size=config.ws_max_size,
        )
        interval = config.ws_ping_interval
        tio = self._wt = _WriteTransport(self.loop)
        ws = WebSocket(
            new_server(opts),
            self,
            tio,
            open_timeout=None,  # the app decides when to accept
            ping_interval=interval if interval else None,
            ping_timeout=config.ws_ping_timeout if interval else None,
            close_timeout=CLOSE_TIMEOUT,
            cross_thread="queue",
            logger=log,
        )
        WSProtocol.__init__(self, ws, tio)
        ws.hold_close = self._hold_close
        self.scope: Dict[str, Any] = {}
        self._queue: Deque[Dict[str, Any]] = deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self._write_waiter: Optional[asyncio.Future[None]] = None
        self.handshake_done = False  # accepted, refused or answered with a response
        self.close_sent = False  # the app sent websocket.close (or shutdown did)
        self._disconnect_queued = False
        self._unread = 0  # websocket.receive messages in the queue
        self._denial: Optional[_Denial] = None  # a denial response in progress
        self.task: Optional[asyncio.Task[None]] = None

    # -------------------------------------------------------------- uvicorn's hooks

    @property
    def close_timeout(self) -> Optional[float]:
        return self.ws.close_timeout

    @close_timeout.setter
    def close_timeout(self, value: Optional[float]) -> None:
        self.ws.close_timeout = value

    @property
    def close_timer(self) -> Optional[asyncio.TimerHandle]:
        """Armed while our close frame waits for the peer's (None otherwise)."""
        conn = self.ws.conn
        if self.ws.closed or conn.close_code_sent is None or conn.close_code_received is not None:
            return None
        return self.tio._timer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connections.add(self)
        super().connection_made(transport)
        ssl = transport.get_extra_info("sslcontext") is not None
        self.scheme = "wss" if ssl else "ws"

    def connection_lost(self, exc: Optional[Exception]) -> None:
        super().connection_lost(exc)
        self.connections.discard(self)
        self._wake_writer()

    def shutdown(self) -> None:
        """Server shutdown: close open connections with 1012, refuse pending ones with 500,
        end a denial response in progress (RST if its body is not complete)."""
        ws = self.ws
        if self._denial is not None:
            self._denial_stop(cut=True)
            return
        if ws.closed:
            return
        if self.close_sent or ws.conn.close_code_sent is not None:
            ws.force_quit()  # our close frame is out: do not wait for the reply any more
        elif ws.is_open:
            if not self.close_sent:
                self.close_sent = True
                self._disconnect({"type": "websocket.disconnect", "code": 1012})
                ws.close(1012, "")
                self._release()
        elif ws.state is CONNECTING and getattr(ws.conn, "request", None) is not None:
            self._respond_500()
        else:
            self.tio.close()

    # -------------------------------------------------------------- driver callbacks

    def on_request(self, ws: WebSocket, request: Request) -> Decision:
        raw_path, _, query = request.target.partition("?")
        subprotocols: List[str] = []
        headers = []
        for name, value in request.headers:
            headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
            if name.lower() == "sec-websocket-protocol":
                subprotocols.extend(t.strip() for t in value.split(",") if t.strip())
        t = self.transport
        server = t.get_extra_info("sockname") if t is not None else None
        client = t.get_extra_info("peername") if t is not None else None
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": tuple(server[:2]) if isinstance(server, tuple) else None,
            "client": tuple(client[:2]) if isinstance(client, tuple) else None,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": self.root_path.encode("ascii") + raw_path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self._push({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        self.task = task
        return DEFER

    def on_text(self, ws: WebSocket, data: str) -> None:
        if not self.close_sent:
            self._unread += 1
            self._push({"type": "websocket.receive", "text": data})

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        if not self.close_sent:
            self._unread += 1
            self._push({"type": "websocket.receive", "bytes": data})

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        conn = ws.conn
        if conn.close_code_received is not None and conn.close_code_received != 1006:
            self._disconnect({"type": "websocket.disconnect", "code": code, "reason": reason})
        else:
            self._disconnect({"type": "websocket.disconnect", "code": 1006})
        self._wake_writer()

    def on_pause(self, ws: WebSocket) -> None:
        pass  # send() looks at self.writing_paused

    def on_resume(self, ws: WebSocket) -> None:
        self._wake_writer()

    # -------------------------------------------------------------- receive side

    def _push(self, message: Dict[str, Any]) -> None:
        self._queue.append(message)
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    # Every message of a read goes to the queue at once; a protocol failure or the peer's
    # close behind them is held (the driver's hold_close: nothing of it applied, its close
    # frame unsent) until the app has taken every message before it, so the app answers
    # those first: a failure's close frame goes out after the app's replies (Autobahn
    # 3.2-3.4, 4.x, 5.15 strict). Reading pauses while the queue holds messages, except
    # after a read that woke a waiting app (it comes back for them at once; not pausing
    # there saves two epoll_ctl calls per read): so at most about two reads wait for it.

    def _hold_close(self, ws: WebSocket) -> bool:
        return self._unread > 0 and not self.close_sent

    def buffer_updated(self, nbytes: int) -> None:
        ws = self.ws
        waiting = self._waiter is not None
        if self._denial is not None and self._denial.head_sent:
            return  # a denial response is going out: what the client sends is dropped
        ws.feed(self._view[:nbytes].tobytes())
        if not waiting and (self._unread or ws.dispatch_paused) and not self._disconnect_queued:
            self.pause_reading()

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        waiting = self._waiter is not None
        if self._denial is not None and self._denial.head_sent:
            return
        ws.feed(data)
        if not waiting and (self._unread or ws.dispatch_paused) and not self._disconnect_queued:
            self.pause_reading()

    def _release(self) -> None:
        """Hand out what dispatch holds (the app is past the last message, or closing)."""
        ws = self.ws
        if ws.dispatch_paused and not ws.closed:
            ws.resume_dispatch()
        if self.reading_paused and not ws.dispatch_paused:
            self.resume_reading()

    def _disconnect(self, message: Dict[str, Any]) -> None:
        if not self._disconnect_queued:
            self._disconnect_queued = True
            self._push(message)
            self.resume_reading()  # the close frame must still get through

    async def receive(self) -> Dict[str, Any]:
        """ASGI ``receive``."""
        q = self._queue
        if not q:
            self._release()
        if not q:
            self._wt.flush()  # the app waits: what it sent goes out now
        while not q:
            w = self._waiter = self.loop.create_future()
            await w
        message = q.popleft()
        if self._unread and message["type"] == "websocket.receive":
            self._unread -= 1
        return message

    # -------------------------------------------------------------- send side

    def _wake_writer(self) -> None:
        w = self._write_waiter
        if w is not None:
            self._write_waiter = None
            if not w.done():
                w.set_result(None)

    async def send(self, message: Dict[str, Any]) -> None:
        """ASGI ``send``."""
        while self.writing_paused and not self.ws.closed:
            w = self._write_waiter = self.loop.create_future()
            await w
        ws = self.ws
        kind = message["type"]
        if not self.handshake_done:
            if ws.closed:
                raise ClientDisconnected()
            self._send_handshake(kind, message)
        elif self._denial is not None:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'.")
            self._denial_body(self._denial, bytes(message.get("body", b"")), bool(message.get("more_body", False)))
        elif ws.closed:
            raise ClientDisconnected()
        elif self.close_sent or not ws.is_open:
            if self.close_sent:
                raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending 'websocket.close'.")
            raise ClientDisconnected()
        elif kind == "websocket.send":
            data = message.get("bytes")
            try:
                if data is not None:
                    ws.send_binary(data)
                else:
                    text = message.get("text")
                    if text is None:
                        raise RuntimeError("websocket.send needs 'bytes' or 'text'")
                    ws.send_text(text)
            except WebSocketError:
                raise ClientDisconnected() from None
        elif kind == "websocket.close":
            code = message.get("code", 1000) or 1000
            reason = message.get("reason", "") or ""
            self.close_sent = True
            self._disconnect({"type": "websocket.disconnect", "code": code, "reason": reason})
            try:
                ws.close(code, reason)
            except WebSocketError:
                raise ClientDisconnected() from None
            self._release()  # the peer's close reply must get through
        else:
            raise RuntimeError(
                f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'."
            )

    def _send_handshake(self, kind: str, message: Dict[str, Any]) -> None:
        ws = self.ws
        if kind == "websocket.accept":
            headers = _str_headers([*self.default_headers, *message.get("headers", [])], _OWN_ACCEPT)
            self._log_access("[accepted]")
            self.handshake_done = True
            ws.accept(message.get("subprotocol"), headers)
        elif kind == "websocket.close":
            self._log_access("403")
            self.handshake_done = True
            self.close_sent = True
            self._disconnect({"type": "websocket.disconnect", "code": 1006})
            ws.reject(403)
        elif kind == "websocket.http.response.start":
            d = _denial(message)  # RuntimeError before handshake_done: the app fails, 500
            self._log_access(str(d.status))
            self.handshake_done = True
            self._denial = d
            d.handle = self.loop.call_soon(self._denial_head)
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' "
                f"or 'websocket.http.response.start' but got '{kind}'."
            )

    # A denial response: held until the end of the loop step of its start (_denial_head),
    # then streamed (see the module docstring).

    def _denial_body(self, d: _Denial, body: bytes, more: bool) -> None:
        if body:
            if d.status in (204, 304):
                raise RuntimeError(f"A {d.status} response cannot have a body.")
            left = d.left
            if left is not None and len(body) > left:
                self._denial_write(d, body[:left])
                d.left = 0
                if d.head_sent:
                    self._denial_end(abort=False)  # complete as declared
                else:
                    self._denial_whole()
                raise RuntimeError("Response content longer than Content-Length.")
            if left is not None:
                d.left = left - len(body)
            self._denial_write(d, body)
        if not more:
            if d.head_sent:
                self._denial_end(abort=False)
            else:
                self._denial_whole()

    def _denial_write(self, d: _Denial, body: bytes) -> None:
        if d.head_sent:
            if body:
                self.tio.write([body])  # dropped if the transport is gone
        else:
            d.chunks.append(body)

    def _denial_head(self) -> None:
        """End of the start's loop step: write the head and what body is held."""
        d = self._denial
        if d is None or d.head_sent:
            return
        d.handle = None
        d.head_sent = True
        out = [d.head()]
        out += d.chunks
        d.chunks = []
        log.debug("denial response %d: head written, body streamed", d.status)
        self.tio.write(out)

    def _denial_whole(self) -> None:
        """The body is complete before the head went out: one response, engine-framed."""
        d = self._denial
        assert d is not None and not d.head_sent
        if d.handle is not None:
            d.handle.cancel()
        self._denial = None
        self.close_sent = True
        self._disconnect({"type": "websocket.disconnect", "code": 1006})
        if self.ws.state is CONNECTING and not self.ws.closed:
            self.ws.reject(d.status, d.headers, b"".join(d.chunks))

    def _denial_stop(self, cut: bool) -> None:
        """End a denial response before its last body message: send what the app sent if
        the head is not out yet; else close, or, if ``cut`` (the app failed, the server
        shuts down) and the body is short of complete, reset, so that a close-delimited or
        short body cannot be taken for a complete one."""
        d = self._denial
        assert d is not None
        if not d.head_sent:
            self._denial_whole()
        else:
            short = d.status not in (204, 304) and (d.left is None or d.left > 0)
            self._denial_end(abort=cut and short)

    def _denial_end(self, abort: bool) -> None:
        """The streamed body is over: close the transport (abort: the body is cut short)."""
        self._denial = None
        self.close_sent = True
        self._disconnect({"type": "websocket.disconnect", "code": 1006})
        if abort:
            self._reset()
        else:
            self.tio.close()

    def _reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0: asyncio's abort alone sends a FIN, which ends
        a close-delimited body as if it were complete)."""
        t = self.transport
        sock = t.get_extra_info("socket") if t is not None else None
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except (OSError, AttributeError):  # pragma: no cover - not a TCP socket
                pass
        self.tio.abort()

    def _respond_500(self) -> None:
        ws = self.ws
        if self.close_sent:  # answered already (a denial response, or 403)
            return
        if ws.state is CONNECTING and not ws.closed and getattr(ws.conn, "request", None) is not None:
            self.handshake_done = True
            ws.reject(500, (), b"Internal Server Error")

    def _log_access(self, what: str) -> None:
        if _access.isEnabledFor(logging.INFO):
            client = self.scope.get("client")
            where = "%s:%d" % client if client else "-"
            path = self.scope.get("path", "")
            qs = self.scope.get("query_string", b"")
            if qs:
                path += "?" + qs.decode("latin-1")
            _access.info('%s - "WebSocket %s" %s', where, path, what)

    # -------------------------------------------------------------- the app task

    async def run_asgi(self) -> None:
        """Run the app; clean up what it left: an unanswered handshake gets 500, a
        half-sent denial response ends (aborted if the app failed in its body), an open
        connection is closed (TCP)."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            result = None
        except BaseException:
            _access.exception("Exception in ASGI application\n")
            self._after_app(failed=True)
            return
        if not self.handshake_done:
            _access.error("ASGI callable returned without completing handshake.")
        elif result is not None:
            _access.error("ASGI callable should return None, but returned '%s'.", result)
        self._after_app(failed=False)

    def _after_app(self, failed: bool) -> None:
        ws = self.ws
        if self._denial is not None:
            self._denial_stop(cut=failed)
            return
        if ws.closed:
            return
        if not self.handshake_done or (failed and ws.state is CONNECTING):
            self._respond_500()
        elif ws.state is OPEN and not self.close_sent:
            ws.force_quit()  # the app left without websocket.close: TCP goes, no close frame


#: A longer alias, for ``--ws wsfast.uvicorn:WSFastWebSocketProtocol``.
WSFastWebSocketProtocol = WSFastProtocol
