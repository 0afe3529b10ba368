"""Non-blocking socket transport for the ``WebSocket`` driver, written once for every
non-blocking adapter (``wsfast.loop`` and the non-blocking client mode).

``NonBlockingSocketTransport`` + ``nonblocking_read``: a non-blocking socket with a write
buffer, high/low watermarks, and TLS's want-read/want-write. The adapter polls (selectors, or
a spin on ``recv``) and calls ``flush`` when writable.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections import deque
from typing import Deque, List, Optional

from ._net import GATHER_MAX_CHUNKS, GATHER_MIN, can_gather, network_error, unsent
from ._sockio import READ_SIZE, RECV_SIZE, ZERO_COPY_AFTER
from .handler import Transport, WebSocket

__all__ = ["NonBlockingSocketTransport", "nonblocking_read", "tls_handshake_step"]

log = logging.getLogger("wsfast.io")


class NonBlockingSocketTransport(Transport):
    """A non-blocking socket with a write buffer and watermarks.

    Subclasses (one per adapter) implement ``want_write(flag)`` (start/stop polling for
    writability), ``wake``, ``timers_changed`` and ``call_later``, and call ``flush()`` when
    the socket is writable. ``on_pause``/``on_resume`` go to the handler when the buffer
    crosses ``high_water``/``low_water`` (through ``pause_changed``, which a subclass may extend,
    e.g. to stop reading from that peer); ``over_limit`` runs when the buffer passes
    ``max_buffer`` (None: no limit); ``on_closed`` runs once when the socket is closed.
    ``bytes_sent``/``bytes_received`` count socket bytes (``nonblocking_read`` adds to the
    latter); while ``read_paused`` is set, ``nonblocking_read`` reads nothing."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        high_water: int = 1 << 20,
        low_water: int = 256 * 1024,
        max_buffer: Optional[int] = None,
    ) -> None:
        if low_water > high_water:
            raise ValueError("low_water must not exceed high_water")
        self.sock = sock
        self.high_water = high_water
        self.low_water = low_water
        self.max_buffer = max_buffer
        #: The last read was large (``nonblocking_read``: then look for the engine's
        #: zero-copy buffer).
        self.large_read = False
        self.ws: Optional[WebSocket] = None
        self.buffered = 0
        self.paused = False
        self.closed = False
        self.bytes_sent = 0
        self.bytes_received = 0
        self.read_paused = False
        self._buf: Deque[memoryview] = deque()
        self._closing = False
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._gather = can_gather(sock)

    # --------------------------------------------------------------- adapter hooks

    def want_write(self, flag: bool) -> None:
        raise NotImplementedError

    def on_closed(self) -> None:
        """The socket was closed (unregister it)."""

    def pause_changed(self, paused: bool) -> None:
        """The buffer crossed a watermark: tell the handler (``on_pause``/``on_resume``)."""
        ws = self.ws
        if ws is not None:
            if paused:
                ws.handler.on_pause(ws)
            else:
                ws.handler.on_resume(ws)

    def over_limit(self) -> None:
        """The buffer passed ``max_buffer`` (a slow consumer): the subclass decides."""

    # --------------------------------------------------------------- Transport

    def write(self, chunks: List[bytes]) -> None:
        if self.closed or self._closing:
            return
        if self._buf:
            for c in chunks:
                self._buf.append(memoryview(c))
                self.buffered += len(c)
        else:
            if len(chunks) == 1:
                out = chunks
            elif self._gather and len(chunks) <= GATHER_MAX_CHUNKS and sum(map(len, chunks)) >= GATHER_MIN:
                out = chunks  # header and large payload in one sendmsg, the payload not copied
            else:
                out = [b"".join(chunks)]
            try:
                n = self.sock.send(out[0]) if len(out) == 1 else self.sock.sendmsg(out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                n = 0
            except OSError as exc:
                self._broken(exc)
                return
            self.bytes_sent += n
            if len(out) == 1 and n == len(out[0]):
                return
            rest = unsent(out, n)
            if not rest:
                return
            for v in rest:
                self._buf.append(v)
                self.buffered += len(v)
            self.want_write(True)
        if not self.paused and self.buffered > self.high_water:
            self.paused = True
            self.pause_changed(True)
        if self.max_buffer is not None and self.buffered > self.max_buffer:
            self.over_limit()

    def flush(self) -> None:
        """The socket is writable: send what is buffered; close when done and asked to."""
        buf = self._buf
        sock = self.sock
        while buf:
            view = buf[0]
            try:
                n = sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            except OSError as exc:
                self._broken(exc)
                return
            self.bytes_sent += n
            self.buffered -= n
            if n == len(view):
                buf.popleft()
            else:
                buf[0] = view[n:]
                return
        self.want_write(False)
        if self.paused and self.buffered <= self.low_water:
            self.paused = False
            self.pause_changed(False)
        if self._closing:
            self._really_close()

    def close(self) -> None:
        if self.closed:
            return
        if self._buf:
            self._closing = True  # flush first (the close frame is in there)
        else:
            self._really_close()

    def abort(self) -> None:
        if not self.closed:
            self._buf.clear()
            self.buffered = 0
            self._really_close()

    def _broken(self, exc: OSError) -> None:
        log.debug("write failed: %r", exc)
        self._buf.clear()
        self.buffered = 0
        self._really_close()

    def _really_close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._closing = False
        try:
            self.sock.close()
        except OSError:
            pass
        self.on_closed()


def nonblocking_read(ws: WebSocket, sock: socket.socket, budget: int = 4 * READ_SIZE) -> bool:
    """The socket is readable: read (up to ``budget`` bytes, then let others run) and feed.

    Returns False once the connection is finished. With TLS, bytes the TLS layer already
    decrypted (``pending()``) are read too, since the selector will not report them. Stops
    early when the transport sets ``read_paused`` (its peer is not reading what we write)."""
    transport = ws.transport
    tls = isinstance(sock, ssl.SSLSocket)
    nb = transport if isinstance(transport, NonBlockingSocketTransport) else None
    if nb is not None and nb.read_paused:
        return True
    got = 0
    while got < budget:
        # Inside the payload of a large frame, read straight into the message object (asked
        # only after a large read: ZERO_COPY_AFTER).
        region = ws.payload_buffer() if nb is None or nb.large_read else None
        data = b""
        try:
            if region is None:
                data = sock.recv(RECV_SIZE)
                n = len(data)
                asked = RECV_SIZE
            else:
                n = sock.recv_into(region)
                asked = len(region)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            if region is not None:
                ws.buffer_updated(0)  # nothing came: the engine gets its buffer back
            return True
        except OSError as exc:
            if region is not None:
                ws.buffer_updated(0)
            if not ws.closed:
                if getattr(transport, "closed", False):
                    ws.feed_eof()
                else:
                    ws.transport_error(network_error(exc, str(ws.remote_address)))
            return False
        if not n:
            if region is not None:
                ws.buffer_updated(0)
            ws.feed_eof()
            return False
        if nb is not None:
            nb.bytes_received += n
            nb.large_read = n >= ZERO_COPY_AFTER
        if region is None:
            ws.feed(data)
        else:
            ws.buffer_updated(n)
        if ws.closed:
            return False
        got += n
        if nb is not None and nb.read_paused:
            return True
        if not tls and n < asked:
            return True  # the kernel buffer is drained: no extra EAGAIN syscall
        if tls and n < asked and not sock.pending():  # type: ignore[attr-defined]
            return True
    return True


def tls_handshake_step(sock: ssl.SSLSocket) -> Optional[str]:
    """Advance a non-blocking TLS handshake: None when done, else "read"/"write" to wait for.

    ``ssl.SSLError`` (certificate, protocol) propagates: map it with ``_net.network_error``."""
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return "read"
    except ssl.SSLWantWriteError:
        return "write"
    return None

