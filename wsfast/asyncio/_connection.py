"""The async face: ``Connection`` (``await recv()``, ``async for``, ``await send()``, ...).

It is a ``Handler`` on the same ``WSProtocol`` + ``WebSocket`` driver as the callback face,
not a second engine loop: messages the driver dispatches go into a bounded deque that
``recv()`` takes from. When the deque holds ``max_queue`` messages, reading from the socket
pauses (``transport.pause_reading``) and resumes once ``recv()`` has taken it down to a
quarter; so a slow reader holds at most ``max_queue`` messages plus the messages of one read
(256 KiB of frames). Once our close frame is out, reading resumes whatever the queue holds
(the peer's close must get through) and messages beyond ``max_queue`` are discarded.
``send()`` returns at once while the transport's write buffer is below
its high watermark, and waits for ``resume_writing`` above it. Several coroutines may wait in
``recv()`` or ``send()`` at once; each message goes to one of them, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, AsyncIterator, Deque, List, Optional, Union

from ..events import Accepted, Request
from ..exceptions import ConnectionClosedOK
from ..handler import Handler, WebSocket
from ._protocol import WSProtocol

log = logging.getLogger("wsfast.asyncio")

__all__ = ["Connection", "DEFAULT_MAX_QUEUE", "Data"]

#: Messages held for ``recv()`` before reading pauses.
DEFAULT_MAX_QUEUE = 16

Data = Union[str, bytes]


class Connection(Handler):
    """One WebSocket connection, as coroutines. Use ``wsfast.asyncio.connect`` or ``serve``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_queue: Optional[int] = DEFAULT_MAX_QUEUE) -> None:
        self.loop = loop
        self.max_queue = max_queue
        self._low = None if max_queue is None else max(max_queue // 4, 1)
        self._messages: Deque[Data] = deque()
        self._recv_waiters: Deque[asyncio.Future[None]] = deque()
        self._write_waiters: List[asyncio.Future[None]] = []
        self._paused = False
        self._pings: List[asyncio.Future[float]] = []
        self._closing = False
        #: Messages dropped because they arrived after our close with the queue full.
        self.discarded = 0
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.ws: WebSocket = None  # type: ignore[assignment]  # set by the client/server
        self.protocol: WSProtocol = None  # type: ignore[assignment]

    # -------------------------------------------------------------- Handler side

    def on_open(self, ws: WebSocket) -> None:
        if not self.opened.done():
            self.opened.set_result(None)

    def on_text(self, ws: WebSocket, data: str) -> None:
        self._push(data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        self._push(data)

    def _push(self, data: Data) -> None:
        q = self._messages
        if self._closing and self.max_queue is not None and len(q) >= self.max_queue:
            # Our close is out and reading goes on to finish the handshake: what the peer
            # sent meanwhile beyond a full queue is not kept (bounded memory).
            self.discarded += 1
            if self.discarded == 1:
                log.debug("receive queue full while closing: discarding later messages")
            return
        q.append(data)
        waiters = self._recv_waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                break
        if self.max_queue is not None and len(q) >= self.max_queue and not self._closing:
            self.protocol.pause_reading()

    def on_pause(self, ws: WebSocket) -> None:
        self._paused = True

    def on_resume(self, ws: WebSocket) -> None:
        self._paused = False
        waiters = self._write_waiters
        if waiters:
            self._write_waiters = []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        if not self.opened.done():
            err = ws.error if isinstance(ws.error, Exception) else ws.closed_error()
            self.opened.set_exception(err)
            self.opened.exception()  # mark retrieved: a server connection may never be awaited
        if not self.closed.done():
            self.closed.set_result(None)
        self.on_resume(ws)
        waiters = self._recv_waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
        exc = ws.closed_error()
        for fut in self._pings:
            if not fut.done():
                fut.set_exception(exc)
        self._pings.clear()

    # -------------------------------------------------------------- user side

    @property
    def request(self) -> Optional[Request]:
        """Servers: the handshake request."""
        return self.ws.request

    @property
    def response(self) -> Optional[Accepted]:
        """Clients: the server's 101 response."""
        return self.ws.response

    @property
    def subprotocol(self) -> Optional[str]:
        return self.ws.subprotocol

    @property
    def remote_address(self) -> Any:
        return self.ws.remote_address

    @property
    def local_address(self) -> Any:
        return self.ws.local_address

    @property
    def latency(self) -> Optional[float]:
        """Round-trip time of the last ping answered (seconds), or None."""
        return self.ws.latency

    @property
    def close_code(self) -> Optional[int]:
        return self.ws.close_code if self.ws.closed else None

    @property
    def close_reason(self) -> str:
        return self.ws.close_reason

    @property
    def is_open(self) -> bool:
        return self.ws.is_open

    @property
    def reading_paused(self) -> bool:
        """True while reading is paused because ``max_queue`` messages wait for ``recv()``."""
        return self.protocol.reading_paused

    async def recv(self) -> Data:
        """The next message (``str`` for text, ``bytes`` for binary).

        Raises ``ConnectionClosedOK``/``ConnectionClosedError`` once the connection is gone
        and every message received before was taken."""
        q = self._messages
        while not q:
            if self.ws.closed:
                raise self.ws.closed_error()
            w = self.loop.create_future()
            self._recv_waiters.append(w)
            try:
                await w
            except asyncio.CancelledError:
                if w in self._recv_waiters:
                    self._recv_waiters.remove(w)
                elif q:
                    self._wake_next()  # we were handed a message we will not take: pass it on
                raise
        data = q.popleft()
        if self.protocol.reading_paused and self._low is not None and len(q) <= self._low:
            self.protocol.resume_reading()
        if q and self._recv_waiters:
            self._wake_next()
        return data

    def _wake_next(self) -> None:
        waiters = self._recv_waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def __aiter__(self) -> AsyncIterator[Data]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Data]:
        """Messages until a normal close (1000/1001); other closes raise."""
        while True:
            try:
                yield await self.recv()
            except ConnectionClosedOK:
                return

    async def send(self, message: Any) -> None:
        """Send ``str`` (text), bytes-like (binary) or an iterable of either (a fragmented
        message); waits while the transport's write buffer is above its high watermark."""
        ws = self.ws
        if ws.closed or not ws.is_open:
            raise self._closed_or_closing()
        ws.send(message)
        if self._paused:
            await self.drain()

    async def drain(self) -> None:
        """Wait until the write buffer is below its low watermark (or the connection is gone)."""
        while self._paused and not self.ws.closed:
            w = self.loop.create_future()
            self._write_waiters.append(w)
            await w

    def _closed_or_closing(self) -> Exception:
        return self.ws.closed_error()

    async def ping(self, payload: Any = b"") -> float:
        """Send a ping and wait for its pong; returns the round-trip time in seconds."""
        ws = self.ws
        if ws.closed or not ws.is_open:
            raise self._closed_or_closing()
        fut: asyncio.Future[float] = self.loop.create_future()
        self._pings.append(fut)

        def answered(latency: float) -> None:
            if not fut.done():
                fut.set_result(latency)
            try:
                self._pings.remove(fut)
            except ValueError:
                pass

        ws.ping(payload, answered)
        return await fut

    async def pong(self, payload: Any = b"") -> None:
        """Send an unsolicited pong."""
        self.ws.pong(payload)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close (handshake, then TCP) and wait until done; the driver's close timeout
        bounds the wait (then TCP is aborted). Idempotent."""
        ws = self.ws
        if not ws.closed and ws.is_open:
            ws.close(code, reason)
            self.closing()
        elif not ws.closed and ws.state.name == "CONNECTING":
            ws.force_quit()
        await self.wait_closed()

    def closing(self) -> None:
        """Our close frame is out: read again (the peer's close must get through even with a
        full queue); messages beyond ``max_queue`` that arrive meanwhile are discarded
        (counted in ``discarded``)."""
        self._closing = True
        self.protocol.resume_reading()

    async def wait_closed(self) -> None:
        """Wait until the connection is gone (``on_close`` ran)."""
        await asyncio.shield(self.closed)

    def abort(self) -> None:
        """Close TCP now, without a closing handshake."""
        if not self.ws.closed:
            self.ws.force_quit()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<wsfast.asyncio.Connection {self.ws!r}>"
