"""Blocking socket IO for the ``WebSocket`` driver, written once for every blocking adapter.

``open_client`` opens a client driver over a blocking socket (TCP/Unix, TLS, request sent);
``blocking_step`` is one read on the owning thread, bounded by the driver's next deadline, so
keepalive, handshake and close timers fire without a helper thread; ``run_blocking`` loops
it until ``on_close``. Used by ``wsfast.sync`` and the blocking-handler and background
client modes. The non-blocking twin (the loop, the non-blocking client mode) is ``wsfast._nbio``.

Threads and the socket
----------------------
The owning thread reads; any thread may write (the driver's ``"lock"`` mode serializes
writers, so frames never interleave). Writes never block blindly: a plain socket is sent to
with ``MSG_DONTWAIT`` (one syscall when the kernel takes it all) and polled for room
otherwise; a TLS socket is non-blocking and every ``SSL_read``/``SSL_write`` runs under a
small IO lock (an OpenSSL connection must not be used by two threads at once).

The blocking-IO deadlock, and what breaks it: when one side writes a lot while the peer
echoes and nobody reads, both kernels' buffers fill and both writers wait for each other.
A writer that finds no room therefore reads what has arrived into a bounded backlog
(``BACKLOG_LIMIT``), which the reader feeds to the engine before touching the socket again.
Past that bound the writer only waits for room, for at most ``write_timeout`` seconds
without progress; then the connection is dropped (``ConnectionClosedError`` 1006, "write
timed out"). Read your messages (or bound what you send) when the peer may echo.
"""

from __future__ import annotations

import logging
import math
import select
import socket
import ssl
import struct
import threading
import time
from collections import deque
from typing import Deque, List, Optional, Tuple, Union

from ._net import GATHER_MAX_CHUNKS, GATHER_MIN, can_gather, connect_socket, network_error, peer_name, unsent
from ._options import ClientOptions, new_client
from ._uri import WebSocketURI
from .exceptions import ConnectionClosed, ConnectionClosedError, NetworkError
from .handler import Handler, Transport, WebSocket

__all__ = [
    "READ_SIZE",
    "RECV_SIZE",
    "ZERO_COPY_AFTER",
    "BACKLOG_LIMIT",
    "DEFAULT_WRITE_TIMEOUT",
    "IDLE_TICK",
    "BlockingSocketTransport",
    "blocking_step",
    "open_client",
    "run_blocking",
]

log = logging.getLogger("wsfast.io")
_monotonic = time.monotonic

#: The asyncio adapter's read buffer and the bytes read per readiness before other
#: connections run: big enough that a 1 MiB message takes few calls, small enough that one
#: read never holds more than this (picows#117: a doubling buffer costs multi-MB).
READ_SIZE = 256 * 1024
#: Bytes asked of one allocating ``sock.recv`` (the reads that do not go into a buffer): below
#: glibc's mmap threshold (128 KiB). Above it, each recv maps fresh pages for its bytes object,
#: shrinks and unmaps them: mmap + mremap + munmap and a page fault per read, 20.6 us against
#: 3.4 us for a 40-byte read measured here, three extra syscalls per message on every adapter.
RECV_SIZE = 64 * 1024
#: Adapters ask the engine for its zero-copy buffer (``WebSocket.payload_buffer``) only after
#: a read of at least this many bytes: large messages arrive in large reads, and a
#: connection exchanging small ones never pays for the question (about 160 ns a read).
ZERO_COPY_AFTER = 16 * 1024
#: Bytes a blocked writer reads ahead for the reader (see the module docstring).
BACKLOG_LIMIT = 4 * 1024 * 1024
#: Seconds a write may wait without the peer taking a byte before the connection is dropped.
#: A peer that stops reading must not hang a sender forever.
DEFAULT_WRITE_TIMEOUT = 30.0
#: A writer that cannot take the read lock re-checks this often.
_WRITER_TICK = 0.05
#: A read with no timer armed still returns this often, so that a timer another thread arms
#: meanwhile (``close()``'s close timeout, ``ping()``'s pong timeout) is seen in time.
IDLE_TICK = 1.0

_POLLIN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
_POLLOUT = select.POLLOUT | select.POLLHUP | select.POLLERR
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
_BLOCKED = (BlockingIOError, *_WANT)


def _ms(timeout: Optional[float]) -> Optional[int]:
    return None if timeout is None else max(0, math.ceil(timeout * 1000))


class BlockingSocketTransport(Transport):
    """The socket side of one blocking connection (see the module docstring).

    Args:
        sock: a connected socket (plain or ``ssl.SSLSocket``); its timeout is taken over.
        write_timeout: seconds a write may make no progress before the connection is
            dropped (None: wait forever; see the deadlock note above).
        backlog_limit: bytes a blocked writer may read ahead for the reader.

    ``close``/``abort`` shut the socket down (which also wakes a thread blocked reading it);
    the owning loop closes the file descriptor when it ends (``release``).
    """

    def __init__(
        self,
        sock: socket.socket,
        write_timeout: Optional[float] = DEFAULT_WRITE_TIMEOUT,
        backlog_limit: int = BACKLOG_LIMIT,
    ) -> None:
        self.sock = sock
        self.write_timeout = write_timeout
        self.backlog_limit = backlog_limit
        self.closed = False
        self._released = False
        self.tls = isinstance(sock, ssl.SSLSocket)
        self._fd = sock.fileno()
        self._backlog: Deque[bytes] = deque()
        self._backlog_size = 0
        self._eof = False
        #: The last read was large (``blocking_step``: then look for the engine's zero-copy
        #: buffer).
        self.large_read = False
        self._read_error: Optional[OSError] = None
        self._rlock = threading.Lock()  # one reader of the socket at a time (owner or blocked writer)

        self._rpoll = select.poll()  # poll objects are single-threaded: one for the reader,
        self._rpoll.register(self._fd, _POLLIN)
        self._wpoll = select.poll()  # one for writers (serialized by the driver's lock)
        self._wpoll.register(self._fd, _POLLOUT)
        self._wmask = _POLLOUT
        self._plain_dontwait = not self.tls and bool(_DONTWAIT)
        #: Large multi-chunk writes go out in one ``sendmsg`` (plain sockets).
        self._gather = self._plain_dontwait and can_gather(sock)
        # A blocking recv() returns within IDLE_TICK (SO_RCVTIMEO), so a read whose timeout is
        # at least that long needs no poll() first: one syscall per read with keepalive on.
        self._tick_read = self._plain_dontwait
        # Without MSG_DONTWAIT (or with TLS) the socket is non-blocking and polled.
        self._io: Optional[threading.Lock] = None if self._plain_dontwait else threading.Lock()
        # Plain sockets stay blocking (reads poll first when they have a deadline, and give up
        # after IDLE_TICK otherwise, through SO_RCVTIMEO: still one syscall per read; writes
        # use MSG_DONTWAIT); TLS sockets are non-blocking and poll on SSLWant*.
        sock.settimeout(None if self._plain_dontwait else 0.0)
        if self._plain_dontwait:
            tick = struct.pack("@ll", int(IDLE_TICK), int((IDLE_TICK % 1) * 1e6))
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tick)
            except OSError:  # pragma: no cover - then a read with no timer waits for data
                self._tick_read = False

    # ------------------------------------------------------------------ reading

    def read(self, timeout: Optional[float]) -> Optional[bytes]:
        """The next bytes from the peer (the backlog first), ``b""`` at end of file, or None
        when nothing came: never later than ``timeout`` seconds (0 polls), but possibly
        sooner, after ``IDLE_TICK``, when ``timeout`` is None or longer (the caller re-checks
        its deadline and timers). Raises ``OSError``."""
        got = self._read(timeout, None)
        assert not isinstance(got, int)
        return got

    def read_into(self, buf: memoryview, timeout: Optional[float]) -> Optional[int]:
        """``read()`` into ``buf`` (the engine's zero-copy buffer): the number of bytes
        written at its start, 0 at end of file, None when nothing came."""
        got = self._read(timeout, buf)
        assert not isinstance(got, bytes)
        return got

    def _read(self, timeout: Optional[float], buf: Optional[memoryview]) -> Union[bytes, int, None]:
        rlock = self._rlock
        if not rlock.acquire(True, -1 if timeout is None else timeout):
            return None  # a blocked writer is reading for us; its backlog comes next time
        try:
            if self._released:
                return b"" if buf is None else 0
            if self._backlog:
                data = b"".join(self._backlog)
                self._backlog.clear()
                self._backlog_size = 0
                if buf is None:
                    return data
                k = min(len(buf), len(data))
                buf[:k] = data[:k]
                if k < len(data):
                    self._backlog.append(data[k:])
                    self._backlog_size = len(data) - k
                return k
            if self._eof:
                return b"" if buf is None else 0
            if self._read_error is not None:
                raise self._read_error
            if self._plain_dontwait:
                sock = self.sock
                if timeout is None or (timeout >= IDLE_TICK and self._tick_read):
                    # Returns within IDLE_TICK, never after ``timeout``: the caller re-checks
                    # its deadline (an early None is allowed: "nothing yet").
                    try:
                        return sock.recv(RECV_SIZE) if buf is None else sock.recv_into(buf)
                    except BlockingIOError:  # IDLE_TICK passed (SO_RCVTIMEO)
                        return None
                if timeout > 0 and not self._rpoll.poll(_ms(timeout)):
                    return None
                try:
                    return sock.recv(RECV_SIZE, _DONTWAIT) if buf is None else sock.recv_into(buf, 0, _DONTWAIT)
                except BlockingIOError:
                    return None
            return self._read_tls(timeout, buf)
        finally:
            rlock.release()

    def _read_tls(self, timeout: Optional[float], buf: Optional[memoryview]) -> Union[bytes, int, None]:
        sock = self.sock
        io = self._io
        assert io is not None
        deadline = None if timeout is None else _monotonic() + timeout
        while True:
            with io:
                try:
                    return sock.recv(RECV_SIZE) if buf is None else sock.recv_into(buf)
                except ssl.SSLWantReadError:
                    mask = _POLLIN
                except ssl.SSLWantWriteError:
                    mask = _POLLOUT
                except BlockingIOError:
                    mask = _POLLIN
            left = IDLE_TICK if deadline is None else deadline - _monotonic()
            if left <= 0:
                return None
            poller = select.poll()
            poller.register(self._fd, mask)
            if not poller.poll(_ms(left)):
                return None

    def _read_ahead(self) -> None:
        """A blocked writer found input waiting: keep it for the reader (rlock held)."""
        try:
            if self._plain_dontwait:
                data = self.sock.recv(RECV_SIZE, _DONTWAIT)
            else:
                io = self._io
                assert io is not None
                with io:
                    data = self.sock.recv(RECV_SIZE)
        except _BLOCKED:
            return
        except OSError as exc:
            self._read_error = exc
            return
        if data:
            self._backlog.append(data)
            self._backlog_size += len(data)
        else:
            self._eof = True

    # ------------------------------------------------------------------ writing

    def write(self, chunks: List[bytes]) -> None:
        if self.closed:
            return
        try:
            if len(chunks) == 1:
                self._send(chunks[0])
            elif sum(map(len, chunks)) < GATHER_MIN:
                self._send(b"".join(chunks))
            elif self._gather and len(chunks) <= GATHER_MAX_CHUNKS:
                self._send_gathered(chunks)
            else:
                for c in chunks:  # big payloads go as they are: no joined copy
                    self._send(c)
        except OSError as exc:
            self.closed = True
            self._shutdown()
            raise ConnectionClosedError(1006, f"write failed: {exc}") from exc

    def _send_gathered(self, chunks: List[bytes]) -> None:
        """Header and payload in one ``sendmsg`` (no copy, one segment); whatever the kernel
        did not take goes out as ``_send`` sends it."""
        try:
            n = self.sock.sendmsg(chunks, (), _DONTWAIT)
        except BlockingIOError:
            n = 0
        for view in unsent(chunks, n):
            self._send(view)

    def _send(self, data: Union[bytes, memoryview]) -> None:
        sock = self.sock
        if self._plain_dontwait:
            try:
                n = sock.send(data, _DONTWAIT)
            except BlockingIOError:
                n = 0
        else:
            n = self._send_tls(data)
        if n == len(data):
            return
        view = memoryview(data)[n:]
        timeout = self.write_timeout
        deadline = None if timeout is None else _monotonic() + timeout
        while view:
            self._wait_writable(deadline)
            if self._plain_dontwait:
                try:
                    n = sock.send(view, _DONTWAIT)
                except BlockingIOError:
                    continue
            else:
                n = self._send_tls(view)
            if n:
                view = view[n:]
                if timeout is not None:
                    deadline = _monotonic() + timeout  # progress: the clock starts again

    def _send_tls(self, data: Union[bytes, memoryview]) -> int:
        io = self._io
        assert io is not None
        with io:
            try:
                return self.sock.send(data)
            except _WANT:
                return 0

    def _wait_writable(self, deadline: Optional[float]) -> None:
        """Wait for room to write, reading input ahead meanwhile (bounded by the backlog)."""
        while True:
            left = None if deadline is None else deadline - _monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"write timed out: the peer took nothing for {self.write_timeout} s")
            rlock = self._rlock
            reading = (
                self._backlog_size < self.backlog_limit
                and not self._eof
                and self._read_error is None
                and rlock.acquire(False)
            )
            try:
                mask = _POLLOUT | _POLLIN if reading else _POLLOUT
                if mask != self._wmask:
                    self._wpoll.modify(self._fd, mask)
                    self._wmask = mask
                wait = left if reading else (_WRITER_TICK if left is None else min(left, _WRITER_TICK))
                events = self._wpoll.poll(_ms(wait))
                if not events:
                    continue
                revents = events[0][1]
                if reading and revents & (select.POLLIN | select.POLLPRI):
                    self._read_ahead()
                if revents & (select.POLLOUT | select.POLLERR | select.POLLHUP):
                    return
            finally:
                if reading:
                    rlock.release()

    # ------------------------------------------------------------------ closing

    def _shutdown(self) -> None:
        try:
            # socket.socket.shutdown, not SSLSocket.shutdown: that one drops the SSL object
            # under a reader that may be using it on another thread.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._shutdown()

    def abort(self) -> None:
        self.close()

    def wake(self) -> None:
        pass  # lock mode: other threads write themselves

    def release(self) -> None:
        """Close the file descriptor (the owning loop is done with it)."""
        if self._released:
            return
        if not self.closed:
            self.closed = True
            self._shutdown()  # wakes a reader still blocked on it
        got = self._rlock.acquire(True, 1.0)  # never close an fd a reader is inside
        try:
            self._released = True
            self.sock.close()
        except OSError:
            pass
        finally:
            if got:
                self._rlock.release()


def blocking_step(ws: WebSocket, sock: socket.socket, max_wait: Optional[float] = None) -> bool:
    """One read on the owning thread: wait for data at most until the driver's next timer
    (and at most ``max_wait`` seconds; 0 polls), feed what arrived, fire due timers.

    Input is always read before timers fire, so a pong that waited in the kernel while the
    application was busy is seen before its timeout is judged. ``ws.transport`` must be a
    ``BlockingSocketTransport`` over ``sock``. Use the driver's ``cross_thread="lock"`` mode
    with it (other threads then write at once); in ``"queue"`` mode the commands other
    threads queue run here, at the next input or within ``IDLE_TICK`` (there is no wake-up
    fd: ``wake()`` does nothing). Returns True while the connection goes on.
    Transport errors reach the handler as ``on_error``/``on_close``; nothing is raised."""
    transport: BlockingSocketTransport = ws.transport  # type: ignore[assignment]
    deadline = ws.next_deadline()
    if deadline is None:
        timeout = max_wait
    else:
        timeout = deadline - _monotonic()
        if timeout < 0:
            timeout = 0.0
        if max_wait is not None and max_wait < timeout:
            timeout = max_wait
    # Inside the payload of a large frame, read straight into the message object (asked
    # only after a large read: ZERO_COPY_AFTER).
    region = ws.payload_buffer() if transport.large_read else None
    data: Optional[bytes] = None
    n: Optional[int] = None
    try:
        if region is None:
            data = transport.read(timeout)
        else:
            n = transport.read_into(region, timeout)
    except OSError as exc:
        if region is not None:
            try:
                ws.buffer_updated(0)  # nothing came: the engine gets its buffer back
            except ConnectionClosed:  # pragma: no cover  (nothing to write: a reply is rare)
                pass
        if ws.closed:
            return False
        if transport.closed:
            ws.feed_eof()  # we shut it down ourselves (close, abort, keepalive failure)
        else:
            transport.closed = True
            transport._shutdown()
            where = str(ws.remote_address)
            if ws.is_open or ws._opened:
                err: Exception = NetworkError(f"connection with {where} lost: {exc.strerror or exc}")
                err.__cause__ = exc
            else:
                err = network_error(exc, where)  # during TLS or the opening handshake
            ws.transport_error(err)
        return not ws.closed
    if region is not None:
        transport.large_read = (n or 0) >= ZERO_COPY_AFTER
    elif data is not None:
        transport.large_read = len(data) >= ZERO_COPY_AFTER
    try:
        if region is not None:
            ws.buffer_updated(n or 0)
            if n == 0:
                ws.feed_eof()
        elif data:
            ws.feed(data)
        elif data is not None:
            ws.feed_eof()
    except ConnectionClosed as exc:  # an answer (pong, close echo) could not be written
        ws.transport_error(exc)
    if deadline is not None and not ws.closed and _monotonic() >= deadline:
        ws.check_timers()
    if ws._commands:  # pending_commands; cross_thread="queue": run at the next step (input or IDLE_TICK)
        try:
            ws.drain_commands()
        except ConnectionClosed as exc:
            ws.transport_error(exc)
    return not ws.closed


def open_client(
    uri: Union[str, WebSocketURI],
    handler: Handler,
    options: ClientOptions,
    *,
    cross_thread: str = "lock",
    write_timeout: Optional[float] = DEFAULT_WRITE_TIMEOUT,
    logger: Optional[logging.Logger] = None,
) -> Tuple[WebSocket, socket.socket]:
    """Open a client connection's socket and driver on the calling thread (which owns it).

    Connects TCP (or ``options.unix_path``), does TLS, builds the engine from ``options``
    and sends the handshake request; the response is read as the caller steps
    (``blocking_step``/``run_blocking``), and the handler's ``on_open`` or ``on_error`` +
    ``on_close`` follow. ``options.open_timeout`` bounds connect + TLS + handshake together.

    Raises (nothing is reported to the handler yet): ``InvalidURI``, ``ValueError`` (an
    option that does not fit the URI), ``ResolveError``, ``ConnectRefused``, ``OpenTimeout``,
    ``TLSError``, ``NetworkError``.
    """
    start = _monotonic()
    parsed, conn = new_client(uri, options)
    ctx = options.ssl_context(parsed)
    sock = connect_socket(
        parsed,
        timeout=options.open_timeout,
        ssl_context=ctx,
        nodelay=options.nodelay,
        options=options.socket_options,
        source_address=options.source_address,
        unix_path=options.unix_path,
    )
    open_timeout = options.open_timeout
    if open_timeout is not None:
        open_timeout = max(open_timeout - (_monotonic() - start), 0.001)
    transport = BlockingSocketTransport(sock, write_timeout)
    ws = WebSocket.with_options(
        conn, handler, transport, options, open_timeout=open_timeout, cross_thread=cross_thread, logger=logger
    )
    try:
        ws.local_address = sock.getsockname()
    except OSError:
        pass
    ws.remote_address = peer_name(sock) if options.unix_path is None else options.unix_path
    try:
        out = conn.data_to_send()
        #: The handshake request as sent (``wsfast.sync`` shows its headers).
        ws.data["request"] = b"".join(out)
        transport.write(out)
        ws.start()  # arms the handshake timer
    except ConnectionClosed as exc:
        transport.release()
        err = NetworkError(f"cannot send the handshake to {parsed.host_header}: {exc}")
        raise err from exc
    (logger or log).debug("connected to %s, handshake request sent", parsed)
    return ws, sock


def run_blocking(ws: WebSocket, sock: socket.socket) -> None:
    """Step ``ws`` on the calling thread until ``on_close`` has run, then close the socket."""
    try:
        while blocking_step(ws, sock):
            pass
    finally:
        transport = ws.transport
        if isinstance(transport, BlockingSocketTransport):
            transport.release()
