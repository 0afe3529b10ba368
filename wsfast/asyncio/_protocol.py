"""The asyncio protocol and transport under both faces of ``wsfast.asyncio`` (and uvicorn's).

``WSProtocol`` is an ``asyncio.BufferedProtocol``: the loop reads straight into one
preallocated buffer (``READ_SIZE``, 256 KiB: one read never holds more, so a multi-MB message
costs no doubling buffer, picows#117), and the ``WebSocket`` driver parses every complete
frame of that read in one pass and calls the handler synchronously. The buffer is shared by
every connection of the thread (asyncio and uvloop call ``get_buffer``, read, then
``buffer_updated`` in one go, and ``buffer_updated`` copies what it got before returning),
so an idle connection costs no read buffer at all. Inside the payload of a large
uncompressed frame, ``get_buffer`` returns the engine's zero-copy buffer instead (the rest
of the frame's place in the message object), so those bytes go from the socket to the
message with no copy but the unmask in place. What the engine wants
written goes to ``transport.writelines`` at once. ``AsyncioTransport`` is the driver's
``Transport`` on an asyncio transport: one ``call_at``-style timer per connection, re-armed
from ``ws.next_deadline()``; cross-thread sends wake the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, cast

from .._net import network_error
from .._sockio import READ_SIZE, ZERO_COPY_AFTER
from ..exceptions import NetworkError
from ..handler import Transport, WebSocket

__all__ = ["READ_SIZE", "AsyncioTransport", "WSProtocol"]

log = logging.getLogger("wsfast.asyncio")
_monotonic = time.monotonic


class AsyncioTransport(Transport):
    """The driver's ``Transport`` over an ``asyncio.Transport``."""

    __slots__ = ("loop", "transport", "ws", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Optional[asyncio.Transport] = None
        self.ws: Optional[WebSocket] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[float] = None

    def write(self, chunks: List[bytes]) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if len(chunks) == 1:
            t.write(chunks[0])
        else:
            t.writelines(chunks)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def wake(self) -> None:
        ws = self.ws
        if ws is not None:
            try:
                self.loop.call_soon_threadsafe(ws.drain_commands)
            except RuntimeError:  # the loop is closed: the connection is gone anyway
                pass

    def timers_changed(self) -> None:
        ws = self.ws
        if ws is None:
            return
        deadline = ws.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            # Deadlines are time.monotonic(); uvloop's clock differs, so arm a relative delay.
            self._timer = self.loop.call_later(max(deadline - _monotonic(), 0.0), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        ws = self.ws
        if ws is not None:
            ws.check_timers()
            if not ws.closed:
                self.timers_changed()

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = None

    def call_later(self, delay: float, callback: Callable[[], Any]) -> asyncio.TimerHandle:
        return self.loop.call_later(delay, callback)


_buffers = threading.local()


def _shared_buffer(size: int) -> memoryview:
    """This thread's read buffer of ``size`` bytes (made on first use)."""
    views: Optional[Dict[int, memoryview]] = getattr(_buffers, "views", None)
    if views is None:
        views = _buffers.views = {}
    view = views.get(size)
    if view is None:
        view = views[size] = memoryview(bytearray(size))
    return view


class WSProtocol(asyncio.BufferedProtocol):
    """One WebSocket connection on an asyncio transport, driving a ``WebSocket``.

    ``ws`` is built by the caller (client or server) with an ``AsyncioTransport``;
    ``on_made`` runs when the transport is up, before the driver starts (with TLS: after the
    TLS handshake; a connection whose TLS handshake fails never gets there, nor to
    ``on_lost``); ``on_lost`` runs once the transport is gone (after ``on_close``).
    Also usable as a plain ``asyncio.Protocol`` (``data_received``), as uvicorn starts it.
    """

    def __init__(
        self,
        ws: WebSocket,
        tio: AsyncioTransport,
        on_lost: Optional[Callable[[WSProtocol], None]] = None,
        read_size: int = READ_SIZE,
        on_made: Optional[Callable[[WSProtocol], None]] = None,
    ) -> None:
        self.ws = ws
        self.tio = tio
        tio.ws = ws
        self.on_lost = on_lost
        self.on_made = on_made
        self._view = _shared_buffer(read_size)
        self._region: Optional[memoryview] = None
        self._large_read = False  # the last read was large
        self.transport: Optional[asyncio.Transport] = None
        self.reading_paused = False
        self.writing_paused = False
        self.lost = False

    # -------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        self.tio.transport = transport
        ws = self.ws
        ws.bind_thread()
        ws.local_address = transport.get_extra_info("sockname")
        ws.remote_address = transport.get_extra_info("peername")
        if self.on_made is not None:
            self.on_made(self)
        ws.start()

    def get_buffer(self, sizehint: int) -> memoryview:
        # Inside the payload of a large frame the loop reads straight into the message
        # object (the engine's zero-copy buffer); elsewhere into the shared buffer.
        # Asked only after a large read (ZERO_COPY_AFTER): small messages never pay for it.
        region = self._region
        if region is None:
            if not self._large_read:
                return self._view
            region = self._region = self.ws.payload_buffer()
            if region is None:
                return self._view
        return region

    def buffer_updated(self, nbytes: int) -> None:
        self._large_read = nbytes >= ZERO_COPY_AFTER
        if self._region is not None:
            self._region = None
            self.ws.buffer_updated(nbytes)
        else:
            self.ws.feed(self._view[:nbytes].tobytes())

    def _drop_region(self) -> None:
        # The read that took the buffer found EOF or an error (asyncio then never calls
        # buffer_updated): hand the engine its buffer back, with nothing in it.
        if self._region is not None:
            self._region = None
            self.ws.buffer_updated(0)

    def data_received(self, data: bytes) -> None:
        self.ws.feed(data)

    def eof_received(self) -> Optional[bool]:
        self._drop_region()
        self.ws.feed_eof()
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.lost = True
        self.tio.cancel_timer()
        ws = self.ws
        if not ws.closed:
            self._drop_region()
            if exc is not None:
                err = network_error(exc, str(ws.remote_address))
                if not isinstance(err, NetworkError):
                    err = NetworkError(f"connection lost: {exc}")
                ws.transport_error(err)
            else:
                ws.feed_eof()
        self.tio.transport = None
        if self.on_lost is not None:
            self.on_lost(self)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.ws.handler.on_pause(self.ws)

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.ws.handler.on_resume(self.ws)

    # -------------------------------------------------------------- flow control

    def pause_reading(self) -> None:
        """Stop reading from the socket (the application's queue is full)."""
        if not self.reading_paused and self.transport is not None and not self.lost:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.lost:
            self.reading_paused = False
            self.transport.resume_reading()
