"""Client and server settings shared by every adapter, and the engines built from them.

Every adapter's public ``connect``/``serve``/``run`` takes the same keyword arguments; it
collects them into ``ClientOptions``/``ServerOptions`` and builds its engine here, so that
compression, limits, headers and timeouts mean the same thing everywhere.
"""

from __future__ import annotations

import os
import ssl as _ssl
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._net import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_OPEN_TIMEOUT,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    SocketOption,
    SslArg,
    client_ssl_context,
)
from ._uri import WebSocketURI, parse_uri
from .connection import DEFAULT_MAX_MESSAGE_SIZE, ClientConnection, ServerConnection
from .extensions import ClientExtensionFactory, ServerExtensionFactory
from .permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate

__all__ = ["ClientOptions", "ServerOptions", "Compression", "new_client", "new_server"]

Headers = Sequence[Tuple[str, str]]
#: ``"deflate"`` (default: permessage-deflate, as browsers offer), ``None`` (off), or an
#: extension factory (e.g. ``ClientPerMessageDeflate(client_max_window_bits=12)``).
Compression = Union[None, bool, str, ClientExtensionFactory, ServerExtensionFactory]

#: Server default window for permessage-deflate: 12 bits costs 49 KiB per idle connection
#: against 189 KiB at 15 (README "permessage-deflate" table; uvicorn#1862 is what 15 costs at
#: thousands of connections), for a few percent of compression ratio on JSON.
SERVER_DEFAULT_WINDOW_BITS = 12


def server_deflate_backend() -> Optional[str]:
    """The deflate library of the default server extension: stdlib zlib, for memory.

    zlib-ng is faster (1.3-1.5x websockets' compressed round trip against 1.0-1.25x) but
    holds about 200 KiB per idle compressed connection whatever the window (a fixed hash
    table and a 32 KiB inflate window) against 49 KiB for zlib at 12 bits: at 10,000
    connections that is 2 GB against 0.5 GB. Clients (one connection) take the process's
    backend, zlib-ng where present. ``WSFAST_DEFLATE`` set explicitly (``zlib-ng``) wins."""
    return None if os.environ.get("WSFAST_DEFLATE") else "zlib"


@dataclass
class ClientOptions:
    """What every client adapter takes (as keyword arguments of its ``connect``/``run``)."""

    subprotocols: Sequence[str] = ()
    headers: Headers = ()
    origin: Optional[str] = None
    compression: Compression = "deflate"
    ssl: SslArg = None
    open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT
    close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT
    ping_interval: Optional[float] = DEFAULT_PING_INTERVAL
    ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT
    max_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE
    max_frame_size: Optional[int] = None
    nodelay: bool = True
    socket_options: Sequence[SocketOption] = ()
    source_address: Optional[Tuple[str, int]] = None
    #: Connect to this Unix socket instead of the URI's host (the URI still gives Host/path).
    unix_path: Optional[str] = None

    @classmethod
    def from_kwargs(cls, kwargs: Dict[str, Any]) -> ClientOptions:
        names = {f.name for f in fields(cls)}
        unknown = set(kwargs) - names
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
        return cls(**kwargs)

    def ssl_context(self, uri: WebSocketURI) -> Optional[_ssl.SSLContext]:
        return client_ssl_context(uri, self.ssl)

    def replace(self, **changes: Any) -> ClientOptions:
        return replace(self, **changes)


@dataclass
class ServerOptions:
    """What every server adapter takes (as keyword arguments of its ``serve``)."""

    subprotocols: Sequence[str] = ()
    compression: Compression = "deflate"
    ssl: Optional[_ssl.SSLContext] = None
    open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT
    close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT
    ping_interval: Optional[float] = DEFAULT_PING_INTERVAL
    ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT
    max_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE
    max_frame_size: Optional[int] = None
    max_connections: Optional[int] = None
    nodelay: bool = True
    reuse_port: bool = False
    backlog: int = 1024
    #: Headers added to every 101 response (e.g. ``Server``).
    headers: Headers = ()

    @classmethod
    def from_kwargs(cls, kwargs: Dict[str, Any]) -> ServerOptions:
        names = {f.name for f in fields(cls)}
        unknown = set(kwargs) - names
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> ServerOptions:
        return replace(self, **changes)


def _limits(max_size: Optional[int], max_frame_size: Optional[int]) -> Dict[str, Any]:
    return {"max_message_size": max_size, "max_frame_size": max_frame_size}


def client_extensions(compression: Compression) -> List[ClientExtensionFactory]:
    if compression is None or compression is False:
        return []
    if compression == "deflate" or compression is True:
        return [ClientPerMessageDeflate()]
    if isinstance(compression, ClientExtensionFactory):
        return [compression]
    raise ValueError(f"compression={compression!r}: use 'deflate', None or a client extension factory")


def server_extensions(compression: Compression) -> List[ServerExtensionFactory]:
    if compression is None or compression is False:
        return []
    if compression == "deflate" or compression is True:
        return [
            ServerPerMessageDeflate(
                server_max_window_bits=SERVER_DEFAULT_WINDOW_BITS,
                client_max_window_bits=SERVER_DEFAULT_WINDOW_BITS,
                backend=server_deflate_backend(),
            )
        ]
    if isinstance(compression, ServerExtensionFactory):
        return [compression]
    raise ValueError(f"compression={compression!r}: use 'deflate', None or a server extension factory")


def new_client(uri: Union[str, WebSocketURI], opts: ClientOptions) -> Tuple[WebSocketURI, ClientConnection]:
    """The parsed URI and a client engine with the request queued (Basic auth from userinfo)."""
    if isinstance(uri, str):
        uri = parse_uri(uri)
    headers = list(opts.headers)
    auth = uri.authorization
    if auth is not None and not any(k.lower() == "authorization" for k, _ in headers):
        headers.append(("Authorization", auth))
    conn = ClientConnection(
        uri.host_header,
        uri.target,
        subprotocols=opts.subprotocols,
        extensions=client_extensions(opts.compression),
        origin=opts.origin,
        extra_headers=headers,
        **_limits(opts.max_size, opts.max_frame_size),
    )
    return uri, conn


def new_server(opts: ServerOptions) -> ServerConnection:
    """A server engine waiting for the request."""
    return ServerConnection(
        subprotocols=opts.subprotocols,
        extensions=server_extensions(opts.compression),
        **_limits(opts.max_size, opts.max_frame_size),
    )
