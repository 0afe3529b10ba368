"""IO helpers shared by every adapter: sockets, TLS, listeners, and errors a user can act on.

Written once here and imported by ``wsfast.sync``, ``wsfast.clients``, ``wsfast.loop`` and
``wsfast.asyncio``. The engine never imports this module (it is sans-IO).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl as _ssl
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

from ._uri import WebSocketURI
from .events import HandshakeFailed, Rejected
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectRefused,
    InvalidHandshake,
    InvalidStatus,
    NetworkError,
    OpenTimeout,
    ResolveError,
    TLSError,
)

__all__ = [
    "SocketOption",
    "SslArg",
    "DEFAULT_OPEN_TIMEOUT",
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PING_TIMEOUT",
    "tune_socket",
    "client_ssl_context",
    "insecure_client_context",
    "resolve",
    "connect_socket",
    "network_error",
    "listen",
    "listen_unix",
    "closed_error",
    "handshake_error",
    "peer_name",
    "GATHER_MIN",
    "GATHER_MAX_CHUNKS",
    "can_gather",
    "unsent",
]

log = logging.getLogger("wsfast.net")

#: ``(level, option, value)`` for ``socket.setsockopt``, applied before connecting.
SocketOption = Tuple[int, int, Union[int, bytes]]
#: What every client's ``ssl=`` takes: None (TLS only for wss://, verified with the system
#: store), an ``ssl.SSLContext``, True (the default context even for ws:// URIs is an
#: error), or False (refuse wss://).
SslArg = Union[None, bool, _ssl.SSLContext]

#: Seconds for TCP connect + TLS + the WebSocket handshake together.
DEFAULT_OPEN_TIMEOUT = 10.0
#: Seconds the closing handshake may take before TCP is closed anyway.
DEFAULT_CLOSE_TIMEOUT = 10.0
#: Seconds between keepalive pings (only when nothing was received meanwhile).
DEFAULT_PING_INTERVAL = 20.0
#: Seconds to wait for the pong before failing the connection with 1011.
DEFAULT_PING_TIMEOUT = 20.0


def tune_socket(sock: socket.socket, nodelay: bool = True, options: Iterable[SocketOption] = ()) -> None:
    """TCP_NODELAY (on by default: WebSocket messages are latency-bound) and user options."""
    if nodelay and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for level, option, value in options:
        sock.setsockopt(level, option, value)


def client_ssl_context(uri: WebSocketURI, ssl: SslArg) -> Optional[_ssl.SSLContext]:
    """The TLS context for ``uri``: verified by default for wss://, none for ws://."""
    if ssl is False:
        if uri.secure:
            raise ValueError("ssl=False cannot connect to a wss:// URI")
        return None
    if isinstance(ssl, _ssl.SSLContext):
        if not uri.secure:
            raise ValueError("an ssl context was given for a ws:// URI: use wss://")
        return ssl
    if ssl is True and not uri.secure:
        raise ValueError("ssl=True was given for a ws:// URI: use wss://")
    if uri.secure:
        return _ssl.create_default_context()
    return None


def insecure_client_context() -> _ssl.SSLContext:
    """A client context that verifies nothing (self-signed test servers; ``--insecure``)."""
    ctx = _ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = _ssl.CERT_NONE
    return ctx


def resolve(host: str, port: int) -> List[Tuple[Any, ...]]:
    """getaddrinfo for TCP, with a ``ResolveError`` that names the host."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ResolveError(f"cannot resolve {host!r}: {exc.strerror}") from exc
    if not infos:
        raise ResolveError(f"cannot resolve {host!r}: no addresses")
    return infos


def network_error(exc: BaseException, where: str) -> Exception:
    """Map an ``OSError`` from connect or a TLS handshake to a wsfast exception."""
    if isinstance(exc, _ssl.SSLCertVerificationError):
        err: Exception = TLSError(f"TLS certificate of {where} not accepted: {exc.verify_message}")
    elif isinstance(exc, (_ssl.SSLError, _ssl.CertificateError)):
        err = TLSError(f"TLS handshake with {where} failed: {exc}")
    elif isinstance(exc, socket.timeout):
        err = OpenTimeout(f"timed out connecting to {where}")
    elif isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        err = ConnectRefused(f"connection to {where} refused")
    elif isinstance(exc, OSError):
        err = NetworkError(f"cannot connect to {where}: {exc.strerror or exc}")
    else:
        return exc  # type: ignore[return-value]
    err.__cause__ = exc
    return err


def connect_socket(
    uri: WebSocketURI,
    *,
    timeout: Optional[float],
    ssl_context: Optional[_ssl.SSLContext] = None,
    nodelay: bool = True,
    options: Iterable[SocketOption] = (),
    source_address: Optional[Tuple[str, int]] = None,
    unix_path: Optional[str] = None,
    sock: Optional[socket.socket] = None,
) -> socket.socket:
    """Open a blocking TCP (or Unix) socket to ``uri`` and do TLS; every failure is a wsfast
    exception (``ResolveError``, ``ConnectRefused``, ``OpenTimeout``, ``TLSError``, ``NetworkError``).

    Tries each resolved address in turn (IPv6 and IPv4) within ``timeout`` overall."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    where = f"{uri.host_header}" if unix_path is None else unix_path
    options = list(options)
    if sock is None:
        if unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                tune_socket(sock, False, options)
                sock.settimeout(timeout)
                sock.connect(unix_path)
            except OSError as exc:
                sock.close()
                raise network_error(exc, where) from None
        else:
            sock = _connect_tcp(uri, deadline, nodelay, options, source_address, where)
    if ssl_context is not None:
        sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.001))
        try:
            sock = ssl_context.wrap_socket(sock, server_hostname=uri.server_hostname or uri.host)
        except OSError as exc:
            sock.close()
            raise network_error(exc, where) from None
    sock.settimeout(None)
    return sock


def _connect_tcp(
    uri: WebSocketURI,
    deadline: Optional[float],
    nodelay: bool,
    options: List[SocketOption],
    source_address: Optional[Tuple[str, int]],
    where: str,
) -> socket.socket:
    import time

    last: Optional[BaseException] = None
    for family, kind, proto, _name, addr in resolve(uri.host, uri.port):
        sock = socket.socket(family, kind, proto)
        try:
            tune_socket(sock, nodelay, options)
            if source_address is not None:
                sock.bind(source_address)
            sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.001))
            sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
            if isinstance(exc, socket.timeout):
                break
    assert last is not None
    raise network_error(last, where) from None


def listen(
    host: Optional[str],
    port: int,
    *,
    backlog: int = 1024,
    reuse_port: bool = False,
    family: int = 0,
) -> List[socket.socket]:
    """Listening TCP sockets for ``host`` (all addresses it resolves to; ``None``/"" = all
    interfaces), with SO_REUSEADDR, and SO_REUSEPORT when asked (several processes on one port)."""
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("SO_REUSEPORT is not available on this platform")
    infos = socket.getaddrinfo(host or None, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    socks: List[socket.socket] = []
    seen = set()
    try:
        for fam, kind, proto, _name, addr in infos:
            if (fam, addr) in seen:
                continue
            seen.add((fam, addr))
            s = socket.socket(fam, kind, proto)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(addr)
            if port == 0 and len(socks) == 1:
                port = s.getsockname()[1]  # the other families take the same free port
                infos = [(f, k, p, n, (a[0], port, *a[2:])) for f, k, p, n, a in infos]  # type: ignore[misc]
            s.listen(backlog)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


def listen_unix(path: str, *, backlog: int = 1024) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale socket file there is replaced)."""
    try:
        if os.path.exists(path) and not os.path.isdir(path):
            import stat

            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)
    except OSError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
        s.listen(backlog)
    except OSError:
        s.close()
        raise
    return s


#: Chunks of a write totalling at least this many bytes go out in one ``sendmsg`` (a gathered
#: write: header and payload in one syscall and one segment, the payload not copied); below
#: it, joining them costs less than the gather.
GATHER_MIN = 64 * 1024
#: At most this many chunks per gathered write (far below every system's IOV_MAX).
GATHER_MAX_CHUNKS = 64


def can_gather(sock: socket.socket) -> bool:
    """Whether ``sock.sendmsg`` is a gathered write here (a plain socket on a platform that
    has it; ``ssl.SSLSocket`` refuses it, and TLS copies into its records anyway)."""
    return hasattr(sock, "sendmsg") and not isinstance(sock, _ssl.SSLSocket)


def unsent(chunks: Sequence[Any], n: int) -> List[memoryview]:
    """What is left of ``chunks`` once the first ``n`` bytes of them are sent (views, no
    copies)."""
    rest: List[memoryview] = []
    for c in chunks:
        size = len(c)
        if n >= size:
            n -= size
            continue
        rest.append(memoryview(c)[n:] if n else memoryview(c))
        n = 0
    return rest


def peer_name(sock: socket.socket) -> Any:
    try:
        return sock.getpeername()
    except OSError:
        return None


def closed_error(conn: Any, code: Optional[int] = None, reason: Optional[str] = None) -> ConnectionClosed:
    """The exception for a connection that is gone, from the engine's close bookkeeping.

    ``ConnectionClosedOK`` when close frames went both ways with 1000, 1001 or 1005 (no code),
    ``ConnectionClosedError`` otherwise (an error code, a failure, no close frame, a timeout)."""
    rcvd = conn.close_code_received if code is None else code
    if rcvd is None:
        rcvd = 1006
    why = conn.close_reason_received if reason is None else reason
    sent = conn.close_code_sent
    ok = (
        conn.failure is None
        and sent in (1000, 1001, 1005)
        and rcvd in (1000, 1001, 1005)
    )
    cls = ConnectionClosedOK if ok else ConnectionClosedError
    return cls(rcvd, why, sent)


def handshake_error(event: Any) -> Exception:
    """The exception for a client handshake that did not open: ``InvalidStatus`` for a
    non-101 answer, ``InvalidHandshake`` for anything malformed (wrong accept hash, garbage)."""
    if isinstance(event, Rejected):
        return InvalidStatus(event.status, event.reason, event.headers, event.body)
    if isinstance(event, HandshakeFailed):
        return InvalidHandshake(f"invalid WebSocket handshake response: {event.reason}")
    return InvalidHandshake(f"unexpected event during the handshake: {event!r}")


def parse_header_args(values: Sequence[str]) -> List[Tuple[str, str]]:
    """``["Name: value", ...]`` (the CLI's ``--header``) as header pairs."""
    out = []
    for v in values:
        name, sep, value = v.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"header {v!r} is not 'Name: value'")
        out.append((name.strip(), value.strip()))
    return out
