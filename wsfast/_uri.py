"""``ws://`` and ``wss://`` URIs (RFC 6455 §3), parsed once for every client adapter.

Pure: no sockets, no DNS. ``parse_uri`` raises ``InvalidURI`` naming what is wrong.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote, urlsplit

from .exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]

_DEFAULT_PORTS = {"ws": 80, "wss": 443}


@dataclass(frozen=True)
class WebSocketURI:
    """A parsed WebSocket URI.

    ``host`` has no brackets (``::1`` for ``ws://[::1]/``); ``target`` is the request target
    (path and query, at least ``/``); ``user``/``password`` come from userinfo, unquoted.
    """

    secure: bool
    host: str
    port: int
    target: str = "/"
    user: Optional[str] = None
    password: Optional[str] = None

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def host_header(self) -> str:
        """The ``Host`` header: brackets around IPv6 literals, the port unless it is the default."""
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        if self.port == _DEFAULT_PORTS["wss" if self.secure else "ws"]:
            return host
        return f"{host}:{self.port}"

    @property
    def authorization(self) -> Optional[str]:
        """``Basic`` credentials for an ``Authorization`` header, from the userinfo (RFC 7617)."""
        if self.user is None:
            return None
        raw = f"{self.user}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    @property
    def server_hostname(self) -> Optional[str]:
        """The name TLS verifies and sends in SNI (None for IP literals: no SNI for those)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return self.host
        return None

    def __str__(self) -> str:
        scheme = "wss" if self.secure else "ws"
        return f"{scheme}://{self.host_header}{self.target}"


def parse_uri(uri: str) -> WebSocketURI:
    """Parse ``ws://host[:port]/path?query`` or ``wss://…``; raise ``InvalidURI`` otherwise."""
    if not isinstance(uri, str):
        raise InvalidURI(f"a WebSocket URI is a str, not {type(uri).__name__}")
    if any(c in uri for c in "\r\n\x00 \t"):
        raise InvalidURI(f"{uri!r} contains white space or control characters")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise InvalidURI(f"{uri!r} is not a valid URI: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURI(f"{uri!r} is not a WebSocket URI: the scheme must be ws or wss")
    if parts.fragment or uri.endswith("#"):
        raise InvalidURI(f"{uri!r} has a fragment, which WebSocket URIs may not have (RFC 6455 §3)")
    host = parts.hostname
    if not host:
        raise InvalidURI(f"{uri!r} has no host")
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    if port == 0:
        raise InvalidURI(f"{uri!r}: port 0 cannot be connected to")
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise InvalidURI(f"{uri!r}: {host!r} in brackets is not an IPv6 address") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return WebSocketURI(scheme == "wss", host, port, target, user, password)
