"""The RFC 6455 §4 opening handshake: pure functions, no IO.

Theory of operation
-------------------
The opening handshake is one HTTP/1.1 request and one HTTP/1.1 response. This module turns
those into bytes and back and checks them against RFC 6455; it keeps no state. The connection
state machine (``wsfast.connection``) owns the buffer and calls, in order:

Client::

    key = generate_key()
    out = build_request(host, target, key, subprotocols=..., extensions=serialize_extensions(...))
    ... bytes arrive ...
    end = find_head_end(buf, request=False)         # -1: wait for more bytes
    status, reason, headers = parse_response(buf[:end])
    if status == 101:
        subprotocol, extensions = validate_response(headers, key, offered_subprotocols)
        # the caller checks ``extensions`` against its offers (RFC 6455 §9.1)
    else:
        ...  # a rejection: the body follows the head (Content-Length / close-delimited)

Server::

    end = find_head_end(buf, request=True)          # -1: wait for more bytes
    method, target, headers = parse_request(buf[:end])
    key, subprotocols, extension_offers = validate_request(method, headers)
    out = build_accept_response(key, subprotocol=..., extensions=...)
    # or, to refuse / on InvalidHandshake:
    out = build_response(exc.status, body=exc.reason.encode())

Everything after the head (``buf[end:]``) belongs to the WebSocket framing layer (or to the
body of a non-101 response).

Errors
------
Every fault in bytes that came from the peer raises ``InvalidHandshake`` with a precise,
human-readable message and an HTTP status hint in ``.status``: the status a server should
answer with (400, 405, 414, 426, 431, 505), or 0 when a client finds a fault in the server's
response (there is nobody to answer). No other exception type escapes the parsing and
validation functions, whatever the input. When ``status`` is 426 the server's response
MUST carry ``Sec-WebSocket-Version: 13`` (RFC 6455 §4.2.2 step 4): adding it is the caller's
job; ``build_response`` adds what RFC 9110 requires of every such status (``Upgrade`` on a
426, ``Allow`` on a 405, ``Content-Length``, ``Connection: close``).

Faults in arguments given by the local application (a header value with CR/LF, a subprotocol
that is not a token, ...) raise ``ValueError``: they are programming errors, and refusing them
prevents header injection.

Strictness
----------
Parsing follows RFC 9112 (HTTP/1.1 message syntax) strictly, because lenient HTTP parsing is
where request smuggling lives: lines end with CRLF only (a bare CR or LF is rejected), header
names are tokens with no whitespace before the colon, obsolete line folding is rejected, field
values may not contain control characters other than HTAB, and a request may not carry a body
(Content-Length other than 0, or any Transfer-Encoding). Header names keep their case and order
as received; lookups are case-insensitive. Field values are decoded as ISO-8859-1 (latin-1),
which maps every byte to one character, so no decoding step can fail.

Extension names and parameter names are kept exactly as sent and compared case-sensitively:
RFC 6455 §9.1 defines them as tokens without case folding, and the registered ones
(``permessage-deflate`` and its parameters, RFC 7692 §7) are all lowercase. Subprotocol names
are likewise compared exactly (RFC 6455 §11.5 registers them as case-sensitive strings).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from http import HTTPStatus
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from .exceptions import InvalidHandshake

__all__ = [
    "MAX_LINE",
    "MAX_HEADERS",
    "MAX_HANDSHAKE",
    "GUID",
    "generate_key",
    "accept_key",
    "build_request",
    "find_head_end",
    "parse_request",
    "validate_request",
    "build_accept_response",
    "build_response",
    "parse_response",
    "validate_response",
    "parse_extensions",
    "serialize_extensions",
    "parse_token_list",
]

# Limits. 8 KiB per line is the precedent of h11 and websockets (and what most HTTP servers,
# e.g. nginx's large_client_header_buffers and Apache's LimitRequestLine, accept): enough for
# any sane cookie or URL, small enough that a single line cannot eat memory.
MAX_LINE = 8192
# 128 headers: websockets' limit; real browsers send ~15-25 on an upgrade request.
MAX_HEADERS = 128
# 64 KiB for the whole head (request/status line + headers + the empty line), h11's default
# max_incomplete_event_size order of magnitude; bounds what we buffer before the head ends.
MAX_HANDSHAKE = 65536

#: RFC 6455 §1.3: the GUID appended to Sec-WebSocket-Key to compute Sec-WebSocket-Accept.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Headers = Sequence[Tuple[str, str]]
Params = List[Tuple[str, Optional[str]]]
ExtensionList = List[Tuple[str, Params]]
BytesLike = Union[bytes, bytearray, memoryview]

# RFC 9110 §5.6.2: token = 1*tchar.
_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(f"[{_TCHAR}]+")
_TOKEN_B = re.compile(f"[{_TCHAR}]+".encode("ascii"))
# RFC 9110 §7.8 (Upgrade): protocol = protocol-name ["/" protocol-version], both tokens.
_PROTOCOL = re.compile(f"[{_TCHAR}]+(?:/[{_TCHAR}]+)?")
# Control characters a field value may not contain (RFC 9110 §5.5: field-vchar, SP and HTAB
# only; obs-text 0x80-0xFF is allowed and decoded as latin-1).
_CTL_B = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 §3.2: request-target; we accept origin-form and absolute-form only.
_TARGET_B = re.compile(rb"[\x21-\x7e]+")
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://")
# RFC 9112 §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT (case-sensitive).
_VERSION_B = re.compile(rb"HTTP/([0-9])\.([0-9])")
# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. We also accept
# a missing final SP when the reason is empty, as most clients do.
_STATUS_LINE_B = re.compile(rb"(HTTP/[0-9]\.[0-9]) ([0-9]{3})(?: (.*))?", re.S)
# RFC 9110 §5.6.3: OWS = *( SP / HTAB ).
_OWS = " \t"

# Headers these builders write themselves; passing them again in extra headers would produce
# a duplicate the peer must reject, so the builders refuse them with ValueError.
_RESERVED_REQUEST = frozenset(
    {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
     "sec-websocket-accept"}
)
_RESERVED_ACCEPT = frozenset(
    {"upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
     "sec-websocket-extensions", "content-length", "transfer-encoding"}
)
_RESERVED_RESPONSE = frozenset({"content-length", "transfer-encoding", "connection"})
# RFC 9110 §15 names where http.HTTPStatus still has the RFC 7231 ones (and so that the
# bytes on the wire do not change with the Python version).
_PHRASES = {413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
            422: "Unprocessable Content"}


def _show(value: Union[str, bytes], limit: int = 80) -> str:
    """repr() of a peer-supplied value, truncated so error messages stay short."""
    if len(value) > limit:
        return repr(value[:limit]) + "..."
    return repr(value)


# --------------------------------------------------------------------------------------------
# Keys


def generate_key() -> str:
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes (RFC 6455 §4.1 item 7: the nonce
    MUST be selected randomly for each connection)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for ``key``: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2 item 5.4)."""
    try:
        raw = (key + GUID).encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"Sec-WebSocket-Key must be ASCII: {_show(key)}") from None
    return base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii")


# --------------------------------------------------------------------------------------------
# Building (local input: faults are ValueError)


def _check_header(name: str, value: str, reserved: frozenset[str] = frozenset()) -> None:
    if not isinstance(name, str) or not isinstance(value, str):
        raise ValueError(f"header name and value must be str: {name!r}: {value!r}")
    if any(c in name or c in value for c in "\r\n\0"):
        raise ValueError(
            f"CR, LF or NUL in header {name!r}: {value!r} (refused: header injection)"
        )
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header name is not an RFC 9110 token: {name!r}")
    if _CTL.search(value):
        raise ValueError(f"control character in value of header {name!r}: {value!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"header {name!r} value is not ISO-8859-1 (encode it first): {value!r}"
        ) from None
    if name.lower() in reserved:
        raise ValueError(f"header {name!r} is set by the handshake; do not pass it again")


def _visible_ascii(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.isascii()
        and _TARGET_B.fullmatch(value.encode("ascii")) is not None
    )


def _reason_phrase(status: int) -> str:
    """RFC 9110's reason phrase for ``status`` (its current wording), or "" if unassigned."""
    reason = _PHRASES.get(status)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    return reason


def _encode_head(first_line: str, headers: Sequence[Tuple[str, str]]) -> bytes:
    parts = [first_line, "\r\n"]
    for name, value in headers:
        parts += (name, ": ", value, "\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


def build_request(
    host: str,
    target: str,
    key: str,
    *,
    origin: Optional[str] = None,
    subprotocols: Sequence[str] = (),
    extensions: Optional[str] = None,
    extra_headers: Sequence[Tuple[str, str]] = (),
) -> bytes:
    """The client's opening handshake request (RFC 6455 §4.1).

    ``host`` is the Host value (``host`` or ``host:port``, already IDNA/bracketed as needed);
    ``target`` the request target (``/path?query``), already percent-encoded.
    ``extensions`` is an already serialized Sec-WebSocket-Extensions value (see
    ``serialize_extensions``); ``None`` or ``""`` sends no such header. Raises ValueError for
    any name or value that would break the request (CR/LF/NUL: header injection), for a
    subprotocol that is not a token, and for extra headers the handshake sets itself.
    """
    if not _visible_ascii(target):
        raise ValueError(f"request target must be non-empty visible ASCII: {target!r}")
    if not _visible_ascii(host):
        raise ValueError(f"Host must be non-empty visible ASCII: {host!r}")
    # RFC 6455 §4.1 items 2, 4-9: Host, Upgrade, Connection, Sec-WebSocket-Key, -Version.
    headers: List[Tuple[str, str]] = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if origin is not None:
        headers.append(("Origin", origin))
    if isinstance(subprotocols, str):
        raise ValueError("subprotocols must be a sequence of str, not a str")
    if subprotocols:
        for proto in subprotocols:
            # RFC 6455 §4.1 item 10: each element a token (§11.3.4).
            if not isinstance(proto, str) or not _TOKEN.fullmatch(proto):
                raise ValueError(f"subprotocol is not an RFC 9110 token: {proto!r}")
        headers.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    if extensions:
        headers.append(("Sec-WebSocket-Extensions", extensions))
    for name, value in headers:
        _check_header(name, value)
    for name, value in extra_headers:
        _check_header(name, value, _RESERVED_REQUEST)
        headers.append((name, value))
    return _encode_head(f"GET {target} HTTP/1.1", headers)


def build_accept_response(
    key: str,
    *,
    subprotocol: Optional[str] = None,
    extensions: Optional[str] = None,
    extra_headers: Sequence[Tuple[str, str]] = (),
) -> bytes:
    """The server's 101 response accepting the handshake (RFC 6455 §4.2.2 step 5).

    ``key`` is the client's Sec-WebSocket-Key (as returned by ``validate_request``);
    ``subprotocol`` one of those the client offered; ``extensions`` an already serialized
    Sec-WebSocket-Extensions value (``None``/``""``: no header).
    """
    headers: List[Tuple[str, str]] = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if subprotocol is not None:
        if not isinstance(subprotocol, str) or not _TOKEN.fullmatch(subprotocol):
            raise ValueError(f"subprotocol is not an RFC 9110 token: {subprotocol!r}")
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    if extensions:
        headers.append(("Sec-WebSocket-Extensions", extensions))
    for name, value in headers:
        _check_header(name, value)
    for name, value in extra_headers:
        _check_header(name, value, _RESERVED_ACCEPT)
        headers.append((name, value))
    return _encode_head("HTTP/1.1 101 Switching Protocols", headers)


def build_response(
    status: int,
    *,
    reason: Optional[str] = None,
    headers: Sequence[Tuple[str, str]] = (),
    body: BytesLike = b"",
) -> bytes:
    """A complete non-101 HTTP/1.1 response (head and body) that ends the connection.

    Used to reject a handshake (the application's choice, e.g. 401/403/404) and to answer a
    malformed one (``InvalidHandshake.status``). ``status`` is 200-599. ``reason`` defaults to
    the standard phrase (empty for unknown codes). Adds, after ``headers``:

    - ``Allow: GET`` to a 405 without one (RFC 9110 §15.5.6: MUST);
    - ``Upgrade: websocket`` to a 426 without one (RFC 9110 §15.5.22: MUST), and then
      ``upgrade`` among the Connection options (RFC 9110 §7.8: a sender of Upgrade MUST);
    - ``Content-Type: text/plain; charset=utf-8`` when there is a body and ``headers`` has no
      Content-Type (RFC 9110 §8.3: SHOULD);
    - ``Content-Length`` (not for 204/304, which cannot have a body: RFC 9110 §8.6), so the
      peer knows where the body ends without waiting for the close;
    - ``Connection: close`` (RFC 9112 §9.6: the connection is not reused after a failed
      upgrade).

    A 401 needs ``WWW-Authenticate`` (RFC 9110 §11.6.1) and a 407 ``Proxy-Authenticate``
    (§11.7.1): only the application knows its challenge, so it must pass it in ``headers``.
    They are not enforced here: a server that relays an application's response (an ASGI
    denial response) sends what the application chose, as uvicorn's own protocols do.
    No ``Date``: the engine has no clock, and RFC 9110 §6.6.1 forbids one from a server
    without a clock; an adapter that has one may pass it in ``headers``.
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(
            f"status must be an int in 200-599 (use build_accept_response for 101): {status!r}"
        )
    if reason is None:
        reason = _reason_phrase(status)
    if not isinstance(reason, str) or any(c in reason for c in "\r\n\0") or _CTL.search(reason):
        raise ValueError(f"reason phrase contains CR, LF or control characters: {reason!r}")
    try:
        reason.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"reason phrase is not ISO-8859-1: {reason!r}") from None
    body = bytes(body)
    out: List[Tuple[str, str]] = []
    names = set()
    for name, value in headers:
        _check_header(name, value, _RESERVED_RESPONSE)
        names.add(name.lower())
        out.append((name, value))
    if status == 405 and "allow" not in names:
        out.append(("Allow", "GET"))
    if status == 426 and "upgrade" not in names:
        out.append(("Upgrade", "websocket"))
        names.add("upgrade")
    has_type = "content-type" in names
    if status in (204, 304):
        if body:
            raise ValueError(f"a {status} response cannot have a body")
    else:
        if body and not has_type:
            out.append(("Content-Type", "text/plain; charset=utf-8"))
        out.append(("Content-Length", str(len(body))))
    out.append(("Connection", "Upgrade, close" if "upgrade" in names else "close"))
    return _encode_head(f"HTTP/1.1 {status} {reason}", out) + body


# --------------------------------------------------------------------------------------------
# Parsing (peer input: faults are InvalidHandshake)


def find_head_end(
    buf: BytesLike, max_size: int = MAX_HANDSHAKE, *, request: bool = True, start: int = 0
) -> int:
    """Index just past the empty line that ends the HTTP head in ``buf``, or -1 if the head is
    not complete yet.

    Raises ``InvalidHandshake`` once ``max_size`` bytes are buffered without the head ending
    (status 431 Request Header Fields Too Large if ``request``, else 0), so a peer cannot make
    us buffer without bound. The head, end included, may be at most ``max_size`` bytes.

    A head that ends with a bare ``\\n\\n`` (no CR) is also reported as complete, so that
    ``parse_request``/``parse_response`` can reject it at once with a precise message instead
    of waiting for ``max_size`` bytes. (No CRLF-only head contains ``\\n\\n``.)

    ``start`` lets a caller that appends to ``buf`` skip what it has already scanned: pass the
    length ``buf`` had at the previous call (which returned -1). This keeps a head that
    arrives one byte at a time linear instead of quadratic.
    """
    start = max(0, start - 3)
    if isinstance(buf, memoryview):
        buf = buf.tobytes()
    n = len(buf)
    end = -1
    i = buf.find(b"\r\n\r\n", start, max_size)
    if i >= 0:
        end = i + 4
    j = buf.find(b"\n\n", start, max_size if end < 0 else end)
    if j >= 0:
        end = j + 2
    if end >= 0:
        return end
    if start == 0 or n <= 16 + 3:
        _check_head_start(buf, request)
    if n >= max_size:
        what = "request" if request else "response"
        raise InvalidHandshake(
            f"HTTP {what} head exceeds {max_size} bytes without ending",
            status=431 if request else 0,
        )
    return -1


def _check_head_start(buf: BytesLike, request: bool) -> None:
    """Fail at once, not after ``max_size`` bytes or a timeout, when what arrives cannot
    start an HTTP head: a TLS ClientHello sent to a plain server, a TLS record or binary
    garbage answering a client. A request must open with a method token (RFC 9112 §3; empty
    lines before it are allowed, §2.2); a response with ``HTTP/``."""
    head = bytes(buf[:32]).lstrip(b"\r\n")
    if not head:
        return
    if request:
        method = head.split(b" ", 1)[0]
        if _TOKEN_B.fullmatch(method):
            return
        hint = " (a TLS handshake: is the client using wss:// against a ws:// server?)" if head[0] == 0x16 else ""
        raise InvalidHandshake(f"not an HTTP request: starts with {_show(head[:16])}{hint}", status=400)
    k = min(len(head), 5)
    if head[:k] == b"HTTP/"[:k]:
        return
    hint = " (a TLS record: is this a wss:// server?)" if head[0] in (0x15, 0x16) else ""
    raise InvalidHandshake(f"not an HTTP response: starts with {_show(head[:16])}{hint}", status=0)


def _split_lines(head: BytesLike, what: str, status: int) -> List[bytes]:
    data = bytes(head)
    if not data.endswith(b"\r\n\r\n"):
        if data.endswith(b"\n\n"):
            raise InvalidHandshake(
                f"HTTP {what} lines must end with CRLF, found a bare LF "
                "(RFC 9112 §2.2)",
                status=status,
            )
        raise InvalidHandshake(
            f"incomplete HTTP {what} head: it must end with an empty line (CRLF CRLF)",
            status=status,
        )
    lines = data[:-4].split(b"\r\n")
    for number, line in enumerate(lines, 1):
        if b"\n" in line:
            problem = "a bare LF (lines must end with CRLF, RFC 9112 §2.2)"
        elif b"\r" in line:
            problem = "a bare CR (RFC 9112 §2.2)"
        elif b"\0" in line:
            problem = "a NUL byte (RFC 9110 §5.5)"
        else:
            continue
        raise InvalidHandshake(
            f"line {number} of the HTTP {what} contains {problem}: {_show(line)}",
            status=status,
        )
    return lines


def _parse_header_lines(
    lines: Sequence[bytes],
    max_line: int,
    max_headers: int,
    bad_status: int,
    big_status: int,
) -> Tuple[Tuple[str, str], ...]:
    if len(lines) > max_headers:
        raise InvalidHandshake(
            f"too many header fields: {len(lines)} > {max_headers}", status=big_status
        )
    headers: List[Tuple[str, str]] = []
    for line in lines:
        if len(line) > max_line:
            raise InvalidHandshake(
                f"header line too long: {len(line)} bytes > {max_line}: {_show(line, 40)}",
                status=big_status,
            )
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 §5.2: a server MUST reject obs-fold (or replace it); we reject it
            # everywhere. The same test catches whitespace after the start line (§2.2).
            raise InvalidHandshake(
                f"header line starts with whitespace (obsolete line folding is not "
                f"allowed, RFC 9112 §5.2): {_show(line)}",
                status=bad_status,
            )
        colon = line.find(b":")
        if colon < 0:
            raise InvalidHandshake(f"header line without a colon: {_show(line)}", status=bad_status)
        raw_name = line[:colon]
        if not raw_name:
            raise InvalidHandshake(f"empty header name: {_show(line)}", status=bad_status)
        if not _TOKEN_B.fullmatch(raw_name):
            if raw_name[-1:] in (b" ", b"\t"):
                # RFC 9112 §5.1: a server MUST reject whitespace between name and colon.
                raise InvalidHandshake(
                    f"whitespace between header name and colon (RFC 9112 §5.1): "
                    f"{_show(raw_name)}",
                    status=bad_status,
                )
            raise InvalidHandshake(
                f"header name is not a token (RFC 9110 §5.1): {_show(raw_name)}",
                status=bad_status,
            )
        name = raw_name.decode("ascii")
        raw_value = line[colon + 1 :].strip(b" \t")  # OWS, RFC 9112 §5.1
        ctl = _CTL_B.search(raw_value)
        if ctl is not None:
            raise InvalidHandshake(
                f"control character 0x{ctl.group()[0]:02x} in the value of header {name} "
                "(RFC 9110 §5.5)",
                status=bad_status,
            )
        headers.append((name, raw_value.decode("latin-1")))
    return tuple(headers)


def parse_request(
    head: BytesLike, *, max_line: int = MAX_LINE, max_headers: int = MAX_HEADERS
) -> Tuple[str, str, Tuple[Tuple[str, str], ...]]:
    """Parse a complete request head (ending with CRLF CRLF) into ``(method, target, headers)``.

    Strict RFC 9112 syntax. Status hints: 414 for a request line longer than ``max_line``,
    431 for a longer header line or more than ``max_headers`` headers, 505 for an HTTP version
    other than 1.x with x >= 1 (RFC 6455 §4.1: "the HTTP version MUST be at least 1.1"),
    400 for everything else malformed.
    """
    lines = _split_lines(head, "request", 400)
    request_line = lines[0]
    if len(request_line) > max_line:
        raise InvalidHandshake(
            f"request line too long: {len(request_line)} bytes > {max_line}", status=414
        )
    if not request_line:
        raise InvalidHandshake("empty request line", status=400)
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise InvalidHandshake(
            f"malformed request line (expected 'METHOD target HTTP/1.1' separated by single "
            f"spaces, RFC 9112 §3): {_show(request_line)}",
            status=400,
        )
    raw_method, raw_target, raw_version = parts
    version = _VERSION_B.fullmatch(raw_version)
    if version is None:
        raise InvalidHandshake(
            f"not an HTTP/1.1 request: bad HTTP version {_show(raw_version)}", status=400
        )
    major, minor = int(version.group(1)), int(version.group(2))
    if major != 1 or minor < 1:
        raise InvalidHandshake(
            f"HTTP version {raw_version.decode('ascii')} not supported: a WebSocket "
            "handshake needs HTTP/1.1 (RFC 6455 §4.1)",
            status=505,
        )
    if not _TOKEN_B.fullmatch(raw_method):
        raise InvalidHandshake(f"method is not a token: {_show(raw_method)}", status=400)
    if not _TARGET_B.fullmatch(raw_target):
        raise InvalidHandshake(
            f"request target contains characters other than visible ASCII: {_show(raw_target)}",
            status=400,
        )
    if not (raw_target.startswith(b"/") or _ABSOLUTE_FORM.match(raw_target)):
        raise InvalidHandshake(
            f"request target must be a path ('/...') or an absolute URI: {_show(raw_target)}",
            status=400,
        )
    headers = _parse_header_lines(lines[1:], max_line, max_headers, 400, 431)
    return raw_method.decode("ascii"), raw_target.decode("ascii"), headers


def parse_response(
    head: BytesLike, *, max_line: int = MAX_LINE, max_headers: int = MAX_HEADERS
) -> Tuple[int, str, Tuple[Tuple[str, str], ...]]:
    """Parse a complete response head into ``(status, reason, headers)``.

    Accepts HTTP/1.0 and 1.x for a rejection (proxies answer 1.0), but a 101 must be
    HTTP/1.1 or later. Every error has status hint 0 (the client has nobody to answer).
    """
    lines = _split_lines(head, "response", 0)
    status_line = lines[0]
    if len(status_line) > max_line:
        raise InvalidHandshake(
            f"status line too long: {len(status_line)} bytes > {max_line}", status=0
        )
    m = _STATUS_LINE_B.fullmatch(status_line)
    if m is None:
        raise InvalidHandshake(
            f"malformed HTTP status line (expected 'HTTP/1.1 101 Switching Protocols'): "
            f"{_show(status_line)}",
            status=0,
        )
    raw_version, raw_status, raw_reason = m.group(1), m.group(2), m.group(3) or b""
    major, minor = raw_version[5] - 48, raw_version[7] - 48
    status = int(raw_status)
    if major != 1:
        raise InvalidHandshake(
            f"unsupported HTTP version in response: {raw_version.decode('ascii')}", status=0
        )
    if status < 100:
        raise InvalidHandshake(f"invalid HTTP status code {status}", status=0)
    if status == 101 and minor < 1:
        raise InvalidHandshake(
            "101 Switching Protocols in an HTTP/1.0 response (RFC 6455 §4.1 needs HTTP/1.1)",
            status=0,
        )
    ctl = _CTL_B.search(raw_reason)
    if ctl is not None:
        raise InvalidHandshake(
            f"control character 0x{ctl.group()[0]:02x} in the reason phrase", status=0
        )
    headers = _parse_header_lines(lines[1:], max_line, max_headers, 0, 0)
    return status, raw_reason.decode("latin-1"), headers


# --------------------------------------------------------------------------------------------
# Header values


def _index(headers: Headers) -> Dict[str, List[str]]:
    """Header values by lower-cased name, each list in order: built once per validation, so
    that looking up the dozen names a handshake checks does not lower every name each time."""
    index: Dict[str, List[str]] = {}
    for k, v in headers:
        k = k.lower()
        if k in index:
            index[k].append(v)
        else:
            index[k] = [v]
    return index


def _values(index: Dict[str, List[str]], name: str) -> Sequence[str]:
    """All values of header ``name`` (lower case), in order (see ``_index``)."""
    return index.get(name, ())


def _split_elements(value: str) -> List[str]:
    """RFC 9110 §5.6.1 #rule: comma-separated, OWS around, empty elements ignored."""
    return [e.strip(_OWS) for e in value.split(",") if e.strip(_OWS)]


def _token_list(value: str, what: str, status: int) -> List[str]:
    items = _split_elements(value)
    for item in items:
        if not _TOKEN.fullmatch(item):
            raise InvalidHandshake(
                f"invalid {what} value {_show(value)}: {_show(item)} is not a token",
                status=status,
            )
    return items


def parse_token_list(value: str) -> List[str]:
    """Comma-separated tokens (RFC 9110 §5.6.1 ``#token``), as sent: OWS trimmed, empty
    elements skipped, order kept. A non-token element raises ``InvalidHandshake(400)``.
    An empty or all-empty value gives ``[]``; callers that need ``1#token`` check that."""
    return _token_list(value, "header", 400)


def _parse_extensions(value: str, status: int) -> ExtensionList:
    def fail(message: str, pos: int) -> InvalidHandshake:
        return InvalidHandshake(
            f"invalid Sec-WebSocket-Extensions {_show(value)}: {message} at position {pos}",
            status=status,
        )

    result: ExtensionList = []
    n = len(value)
    pos = 0

    def skip_ows(p: int) -> int:
        while p < n and value[p] in _OWS:
            p += 1
        return p

    while True:
        pos = skip_ows(pos)
        if pos == n:
            break
        if value[pos] == ",":  # empty list element, tolerated by RFC 9110 §5.6.1.2
            pos += 1
            continue
        m = _TOKEN.match(value, pos)
        if m is None:
            raise fail(f"expected an extension name (a token), found {value[pos]!r}", pos)
        name = m.group()
        pos = m.end()
        params: Params = []
        while True:
            pos = skip_ows(pos)
            if pos == n or value[pos] == ",":
                break
            if value[pos] != ";":
                raise fail(f"expected ';' or ',' after {name!r}, found {value[pos]!r}", pos)
            pos = skip_ows(pos + 1)
            m = _TOKEN.match(value, pos)
            if m is None:
                found = repr(value[pos]) if pos < n else "the end"
                raise fail(f"expected a parameter name (a token) after ';', found {found}", pos)
            pname = m.group()
            pos = skip_ows(m.end())
            pvalue: Optional[str] = None
            if pos < n and value[pos] == "=":
                pos = skip_ows(pos + 1)
                if pos < n and value[pos] == '"':
                    pvalue, pos = _quoted_string(value, pos, fail)
                    # RFC 6455 §9.1: "the value MUST conform to the ABNF for token" once
                    # unquoted.
                    if not _TOKEN.fullmatch(pvalue):
                        raise fail(
                            f"the quoted value of parameter {pname!r} is not a token "
                            f"once unquoted (RFC 6455 §9.1): {pvalue!r}",
                            pos,
                        )
                else:
                    m = _TOKEN.match(value, pos)
                    if m is None:
                        found = repr(value[pos]) if pos < n else "the end"
                        raise fail(
                            f"expected a token or quoted-string value for parameter "
                            f"{pname!r}, found {found}",
                            pos,
                        )
                    pvalue = m.group()
                    pos = m.end()
            params.append((pname, pvalue))
        result.append((name, params))
        if pos < n:
            pos += 1  # the comma
    if not result:
        raise InvalidHandshake(
            f"invalid Sec-WebSocket-Extensions {_show(value)}: no extension in the list "
            "(the grammar is 1#extension, RFC 6455 §9.1)",
            status=status,
        )
    return result


def _quoted_string(
    value: str, pos: int, fail: Callable[[str, int], InvalidHandshake]
) -> Tuple[str, int]:
    """RFC 9110 §5.6.4 quoted-string starting at ``value[pos] == '"'``: (content, end)."""
    start = pos
    pos += 1
    out: List[str] = []
    n = len(value)
    while pos < n:
        c = value[pos]
        if c == '"':
            return "".join(out), pos + 1
        if c == "\\":
            if pos + 1 == n:
                break
            nxt = value[pos + 1]
            # quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            if nxt != "\t" and (nxt < " " or nxt == "\x7f"):
                raise fail(f"invalid escaped character {nxt!r} in quoted-string", pos + 1)
            out.append(nxt)
            pos += 2
            continue
        # qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
        if c != "\t" and (c < " " or c == "\x7f"):
            raise fail(f"invalid character {c!r} in quoted-string", pos)
        out.append(c)
        pos += 1
    raise fail("unterminated quoted-string", start)


def parse_extensions(value: str) -> ExtensionList:
    """Parse a Sec-WebSocket-Extensions value (RFC 6455 §9.1) into
    ``[(name, [(param, value_or_None), ...]), ...]``, in order.

    Grammar: ``extension-list = 1#extension``; ``extension = token *( ";" param )``;
    ``param = token [ "=" (token | quoted-string) ]``, with OWS around ``;``, ``,`` and ``=``.
    Quoted values are unquoted (backslash escapes resolved) and must then be tokens. Empty
    list elements (``"a, , b"``) are skipped as RFC 9110 §5.6.1.2 requires; a list with no
    extension at all is an error. Names are kept as sent (case-sensitive). The same extension
    may appear several times (successive offers, in order of preference); repeated parameters
    are kept and left to the extension to judge (RFC 7692 §7 rejects them for
    permessage-deflate). Any other input raises ``InvalidHandshake(status=400)``.
    """
    return _parse_extensions(value, 400)


def serialize_extensions(items: Sequence[Tuple[str, Sequence[Tuple[str, Optional[str]]]]]) -> str:
    """Inverse of ``parse_extensions``:
    ``[("permessage-deflate", [("client_max_window_bits", None)]), ("x", [])]`` ->
    ``"permessage-deflate; client_max_window_bits, x"``. Names and values must be tokens
    (ValueError otherwise); values are therefore never quoted."""
    out: List[str] = []
    for name, params in items:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"extension name is not a token: {name!r}")
        parts = [name]
        for pname, pvalue in params:
            if not isinstance(pname, str) or not _TOKEN.fullmatch(pname):
                raise ValueError(f"extension parameter name is not a token: {pname!r}")
            if pvalue is None:
                parts.append(pname)
            elif isinstance(pvalue, str) and _TOKEN.fullmatch(pvalue):
                parts.append(f"{pname}={pvalue}")
            else:
                raise ValueError(
                    f"extension parameter value is not a token (RFC 6455 §9.1): {pvalue!r}"
                )
        out.append("; ".join(parts))
    return ", ".join(out)


# --------------------------------------------------------------------------------------------
# Validation


def _exactly_one(index: Dict[str, List[str]], name: str, status: int) -> str:
    values = _values(index, name.lower())
    if not values:
        raise InvalidHandshake(f"missing {name} header", status=status)
    if len(values) > 1:
        raise InvalidHandshake(
            f"{name} header appears {len(values)} times; it must appear exactly once",
            status=status,
        )
    return values[0]


def _check_connection_upgrade(index: Dict[str, List[str]], status: int, where: str) -> None:
    """RFC 6455 §4.2.1 item 4 / §4.1 item 3: Connection (all instances combined, RFC 9110
    §5.3) must contain the token "Upgrade", ASCII case-insensitively, e.g. Firefox's
    "keep-alive, Upgrade"."""
    values = _values(index, "connection")
    if not values:
        raise InvalidHandshake(f"missing Connection header{where}", status=status)
    options = [e for v in values for e in _token_list(v, "Connection", status)]
    if not any(option.lower() == "upgrade" for option in options):
        raise InvalidHandshake(
            f"Connection header{where} does not contain 'Upgrade': {_show(', '.join(values))}",
            status=status,
        )


def validate_request(
    method: str, headers: Headers
) -> Tuple[str, Tuple[str, ...], ExtensionList]:
    """Check a parsed request against RFC 6455 §4.2.1 (the server's requirements).

    Returns ``(key, offered_subprotocols, extension_offers)``. Raises ``InvalidHandshake``:
    405 if the method is not GET; 426 if Sec-WebSocket-Version is missing or not 13 (the
    response must then carry ``Sec-WebSocket-Version: 13``, §4.2.2 step 4); 400 otherwise.
    The version is checked before the key, so pre-RFC clients (hixie-76, no version header)
    get the 426 that tells them what we speak.
    """
    # §4.2.1 item 1: "An HTTP/1.1 or higher GET request" (the version: parse_request).
    if method != "GET":
        raise InvalidHandshake(
            f"method {method} not allowed: a WebSocket handshake is a GET (RFC 6455 §4.2.1)",
            status=405,
        )
    index = _index(headers)
    # §4.2.1 item 2 (and RFC 9112 §3.2: a server MUST answer 400 to a request with no Host
    # or more than one).
    host = _exactly_one(index, "Host", 400)
    if not host:
        raise InvalidHandshake("empty Host header (RFC 6455 §4.1 item 4)", status=400)
    # RFC 9110 §9.3.1: content in a GET has no defined semantics and is a smuggling vector;
    # here the bytes after the head are WebSocket frames, so a body would be misread.
    if _values(index, "transfer-encoding"):
        raise InvalidHandshake(
            "Transfer-Encoding in a WebSocket handshake request: it cannot have a body",
            status=400,
        )
    for length in _values(index, "content-length"):
        if length != "0":
            raise InvalidHandshake(
                f"Content-Length {_show(length)} in a WebSocket handshake request: "
                "it cannot have a body",
                status=400,
            )
    # §4.2.1 item 3: Upgrade containing "websocket" (ASCII case-insensitive). Upgrade is a
    # list of protocol[/version] (RFC 9110 §7.8), e.g. "websocket, h2c".
    upgrades = [e for v in _values(index, "upgrade") for e in _split_elements(v)]
    if not upgrades:
        raise InvalidHandshake("missing Upgrade header (RFC 6455 §4.2.1 item 3)", status=400)
    for item in upgrades:
        if not _PROTOCOL.fullmatch(item):
            raise InvalidHandshake(f"invalid Upgrade header element {_show(item)}", status=400)
    if not any(item.lower() == "websocket" for item in upgrades):
        raise InvalidHandshake(
            f"Upgrade header does not contain 'websocket': "
            f"{_show(', '.join(_values(index, 'upgrade')))} (RFC 6455 §4.2.1 item 3)",
            status=400,
        )
    # §4.2.1 item 4: Connection containing the token "Upgrade".
    _check_connection_upgrade(index, 400, "")
    # §4.2.1 item 6 and §4.2.2 step 4: version 13, else 426 with Sec-WebSocket-Version: 13.
    versions = _values(index, "sec-websocket-version")
    if not versions:
        raise InvalidHandshake(
            "missing Sec-WebSocket-Version header: only version 13 is supported", status=426
        )
    if len(versions) > 1 or versions[0] != "13":
        raise InvalidHandshake(
            f"unsupported Sec-WebSocket-Version {_show(', '.join(versions))}: only 13 is "
            "supported (RFC 6455 §4.2.2)",
            status=426,
        )
    # §4.2.1 item 5: a base64-encoded 16-byte value; §11.3.1: it MUST NOT appear more than once.
    key = _exactly_one(index, "Sec-WebSocket-Key", 400)
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):  # ValueError: UnicodeEncodeError for non-ASCII
        raise InvalidHandshake(
            f"Sec-WebSocket-Key is not valid base64: {_show(key)}", status=400
        ) from None
    if len(raw) != 16:
        raise InvalidHandshake(
            f"Sec-WebSocket-Key must decode to 16 bytes, got {len(raw)}: {_show(key)}",
            status=400,
        )
    # §4.2.1 item 8: subprotocols, a list of tokens in order of preference (§11.3.4); the
    # header may repeat (RFC 9110 §5.3 combines them).
    protocol_values = _values(index, "sec-websocket-protocol")
    subprotocols: List[str] = []
    for value in protocol_values:
        subprotocols += _token_list(value, "Sec-WebSocket-Protocol", 400)
    if protocol_values and not subprotocols:
        raise InvalidHandshake(
            "empty Sec-WebSocket-Protocol header (the grammar is 1#token, RFC 6455 §11.3.4)",
            status=400,
        )
    # §4.2.1 item 9 and §9.1: extension offers, possibly over several headers (§9.1: "may
    # be split into multiple instances").
    offers: ExtensionList = []
    for value in _values(index, "sec-websocket-extensions"):
        offers += _parse_extensions(value, 400)
    return key, tuple(subprotocols), offers


def validate_response(
    headers: Headers, key: str, offered_subprotocols: Sequence[str]
) -> Tuple[Optional[str], ExtensionList]:
    """Check the headers of a 101 response against RFC 6455 §4.1 (the client's checks).

    Returns ``(subprotocol or None, extensions)``; the caller checks that every extension
    is one it offered (§4.1 item 5 / §9.1: otherwise the client MUST fail the connection).
    Raises ``InvalidHandshake(status=0)`` for anything that fails the connection.
    """
    # §4.1, reading the response, item 2: "If the response lacks an |Upgrade| header field or
    # the |Upgrade| header field contains a value that is not an ASCII case-insensitive match
    # for the value "websocket", the client MUST _Fail the WebSocket Connection_". Stricter
    # than the request side on purpose: the server must have picked websocket alone.
    index = _index(headers)
    upgrades = [e for v in _values(index, "upgrade") for e in _split_elements(v)]
    if not upgrades:
        raise InvalidHandshake("missing Upgrade header in the 101 response", status=0)
    if len(upgrades) != 1 or upgrades[0].lower() != "websocket":
        raise InvalidHandshake(
            f"Upgrade header of the 101 response is not 'websocket': "
            f"{_show(', '.join(_values(index, 'upgrade')))}",
            status=0,
        )
    # Item 3: Connection MUST contain the token "Upgrade" (case-insensitive).
    _check_connection_upgrade(index, 0, " of the 101 response")
    # Item 4: Sec-WebSocket-Accept MUST be base64(SHA-1(key + GUID)).
    accept = _exactly_one(index, "Sec-WebSocket-Accept", 0)
    expected = accept_key(key)
    if accept != expected:
        raise InvalidHandshake(
            f"wrong Sec-WebSocket-Accept: got {_show(accept)}, expected {expected!r}",
            status=0,
        )
    # Item 6: a subprotocol the client did not offer fails the connection; so does more than
    # one (the server selects one, §4.2.2 step 5 / §11.3.4).
    subprotocol: Optional[str] = None
    protocol_values = _values(index, "sec-websocket-protocol")
    if protocol_values:
        if len(protocol_values) > 1:
            raise InvalidHandshake(
                "Sec-WebSocket-Protocol appears more than once in the 101 response", status=0
            )
        chosen = _token_list(protocol_values[0], "Sec-WebSocket-Protocol", 0)
        if len(chosen) != 1:
            raise InvalidHandshake(
                f"the server must select exactly one subprotocol, got "
                f"{_show(protocol_values[0])}",
                status=0,
            )
        subprotocol = chosen[0]
        if subprotocol not in offered_subprotocols:
            raise InvalidHandshake(
                f"the server selected subprotocol {subprotocol!r}, which was not offered "
                f"(offered: {', '.join(offered_subprotocols) or 'none'})",
                status=0,
            )
    # Item 5: extensions; validated against the offers by the caller.
    extensions: ExtensionList = []
    for value in _values(index, "sec-websocket-extensions"):
        extensions += _parse_extensions(value, 0)
    return subprotocol, extensions
