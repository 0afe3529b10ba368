"""Tests for wsfast.handshake: the RFC 6455 §4 opening handshake, as pure functions."""

from __future__ import annotations

import base64
import contextlib
import random
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsfast.exceptions import InvalidHandshake
from wsfast.handshake import (
    MAX_HANDSHAKE,
    MAX_HEADERS,
    MAX_LINE,
    accept_key,
    build_accept_response,
    build_request,
    build_response,
    find_head_end,
    generate_key,
    parse_extensions,
    parse_request,
    parse_response,
    parse_token_list,
    serialize_extensions,
    validate_request,
    validate_response,
)

# RFC 6455 §1.3.
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

GOOD_REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

GOOD_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


def request_headers(**changes: str | None) -> list[tuple[str, str]]:
    """Valid request headers; ``changes`` maps a name (underscores for dashes) to a new
    value, or to None to drop the header."""
    base = {
        "Host": "server.example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": RFC_KEY,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in changes.items():
        base[name.replace("_", "-")] = value  # type: ignore[assignment]
    return [(k, v) for k, v in base.items() if v is not None]


def response_headers(**changes: str | None) -> list[tuple[str, str]]:
    base = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": RFC_ACCEPT,
    }
    for name, value in changes.items():
        base[name.replace("_", "-")] = value  # type: ignore[assignment]
    return [(k, v) for k, v in base.items() if v is not None]


@contextlib.contextmanager
def raises(status: int, match: str) -> Iterator[None]:
    """Expect exactly InvalidHandshake with this status and a message matching ``match``."""
    with pytest.raises(InvalidHandshake, match=match) as info:
        yield
    assert type(info.value) is InvalidHandshake
    assert info.value.status == status, info.value


def feed(data: bytes, sizes: list[int], *, request: bool = True) -> int:
    """Feed ``data`` to find_head_end in pieces, as connection.py does; return the end."""
    buf = bytearray()
    scanned = 0
    pos = 0
    for size in sizes + [len(data)]:
        buf += data[pos : pos + size]
        pos += size
        end = find_head_end(buf, request=request, start=scanned)
        if end >= 0:
            return end
        scanned = len(buf)
        if pos >= len(data):
            break
    return -1


# ------------------------------------------------------------------------------- keys


def test_accept_key_rfc_example() -> None:
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_accept_key_non_ascii_is_value_error() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        accept_key("clé")


def test_generate_key() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert len(key) == 24
        assert len(base64.b64decode(key, validate=True)) == 16


# ------------------------------------------------------------------------------- building


def test_build_request_rfc_example_exact_bytes() -> None:
    out = build_request(
        "server.example.com",
        "/chat",
        RFC_KEY,
        origin="http://example.com",
        subprotocols=["chat", "superchat"],
    )
    assert out == (
        b"GET /chat HTTP/1.1\r\n"
        b"Host: server.example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://example.com\r\n"
        b"Sec-WebSocket-Protocol: chat, superchat\r\n"
        b"\r\n"
    )


def test_build_request_minimal_extensions_and_extras() -> None:
    assert build_request("h:8080", "/", RFC_KEY) == (
        b"GET / HTTP/1.1\r\nHost: h:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    out = build_request(
        "h",
        "/x?y=1",
        RFC_KEY,
        extensions="permessage-deflate; client_max_window_bits",
        extra_headers=[("User-Agent", "wsfast"), ("Cookie", "a=\u00e9")],
    )
    assert out.endswith(
        b"Sec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        b"User-Agent: wsfast\r\n"
        b"Cookie: a=\xe9\r\n\r\n"
    )
    # empty extensions string: no header
    assert b"Extensions" not in build_request("h", "/", RFC_KEY, extensions="")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"extra_headers": [("X-A", "b\r\nEvil: 1")]}, "header injection"),
        ({"extra_headers": [("X-A", "b\nEvil: 1")]}, "header injection"),
        ({"extra_headers": [("X-A", "b\rc")]}, "header injection"),
        ({"extra_headers": [("X-A", "b\0c")]}, "header injection"),
        ({"extra_headers": [("X-A\r\nEvil", "b")]}, "header injection"),
        ({"extra_headers": [("X A", "b")]}, "not an RFC 9110 token"),
        ({"extra_headers": [("", "b")]}, "not an RFC 9110 token"),
        ({"extra_headers": [("X-A", "b\x01")]}, "control character"),
        ({"extra_headers": [("X-A", "\u20ac")]}, "ISO-8859-1"),
        ({"extra_headers": [("host", "other")]}, "set by the handshake"),
        ({"extra_headers": [("Sec-WebSocket-Key", RFC_KEY)]}, "set by the handshake"),
        ({"origin": "http://a\r\nEvil: 1"}, "header injection"),
        ({"extensions": "x\r\nEvil: 1"}, "header injection"),
        ({"subprotocols": ["chat", "bad proto"]}, "subprotocol is not"),
        ({"subprotocols": ["a,b"]}, "subprotocol is not"),
        ({"subprotocols": "chat"}, "not a str"),
    ],
)
def test_build_request_rejects_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_request("h", "/", RFC_KEY, **kwargs)


@pytest.mark.parametrize(
    "host, target",
    [("h", "/a b"), ("h", "/a\r\nX: y"), ("h", ""), ("h", "/caf\u00e9"), ("a b", "/"),
     ("h\r\nX: y", "/"), ("", "/")],
)
def test_build_request_rejects_bad_host_or_target(host: str, target: str) -> None:
    with pytest.raises(ValueError, match="visible ASCII"):
        build_request(host, target, RFC_KEY)


def test_build_accept_response_exact_bytes() -> None:
    assert build_accept_response(RFC_KEY) == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n"
    )
    assert build_accept_response(
        RFC_KEY,
        subprotocol="chat",
        extensions="permessage-deflate; server_max_window_bits=10",
        extra_headers=[("Server", "wsfast")],
    ) == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"
        b"Server: wsfast\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"subprotocol": "a b"}, "subprotocol is not"),
        ({"subprotocol": "a\r\nX: y"}, "subprotocol is not"),
        ({"extensions": "x\nEvil: 1"}, "header injection"),
        ({"extra_headers": [("Set-Cookie", "a\r\n\r\n<html>")]}, "header injection"),
        ({"extra_headers": [("Sec-WebSocket-Protocol", "x")]}, "set by the handshake"),
        ({"extra_headers": [("connection", "close")]}, "set by the handshake"),
    ],
)
def test_build_accept_response_rejects_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_accept_response(RFC_KEY, **kwargs)


def test_build_response_exact_bytes() -> None:
    assert build_response(400, body=b"bad key") == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 7\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"bad key"
    )
    # RFC 9110 §15.5.22 / §7.8: every 426 carries Upgrade, and Upgrade its connection option.
    assert build_response(426, headers=[("Sec-WebSocket-Version", "13")]) == (
        b"HTTP/1.1 426 Upgrade Required\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Upgrade: websocket\r\n"
        b"Content-Length: 0\r\n"
        b"Connection: Upgrade, close\r\n"
        b"\r\n"
    )
    assert build_response(405) == (
        b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    assert build_response(405, headers=[("Allow", "GET, HEAD")]).count(b"\r\nAllow:") == 1
    assert build_response(414).startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert build_response(
        403, reason="Go Away", headers=[("Content-Type", "text/html")], body=bytearray(b"<p>")
    ) == (
        b"HTTP/1.1 403 Go Away\r\n"
        b"Content-Type: text/html\r\n"
        b"Content-Length: 3\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"<p>"
    )
    assert build_response(299) == (
        b"HTTP/1.1 299 \r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    assert build_response(204) == b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "status, kwargs, match",
    [
        (101, {}, "200-599"),
        (600, {}, "200-599"),
        (True, {}, "200-599"),
        ("400", {}, "200-599"),
        (400, {"reason": "a\r\nX: y"}, "reason phrase"),
        (400, {"reason": "\u20ac"}, "ISO-8859-1"),
        (400, {"headers": [("X", "a\r\nb")]}, "header injection"),
        (400, {"headers": [("Content-Length", "5")]}, "set by the handshake"),
        (400, {"headers": [("Connection", "keep-alive")]}, "set by the handshake"),
        (204, {"body": b"x"}, "cannot have a body"),
    ],
)
def test_build_response_rejects_bad_input(status: object, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_response(status, **kwargs)  # type: ignore[arg-type]


def test_build_response_parses_back() -> None:
    out = build_response(404, body=b"no such path")
    end = find_head_end(out, request=False)
    status, reason, headers = parse_response(out[:end])
    assert (status, reason) == (404, "Not Found")
    assert ("Content-Length", "12") in headers
    assert out[end:] == b"no such path"


# ------------------------------------------------------------------------------- find_head_end


def test_find_head_end_whole_and_trailing_data() -> None:
    assert find_head_end(GOOD_REQUEST) == len(GOOD_REQUEST)
    assert find_head_end(bytearray(GOOD_REQUEST + b"\x81\x05hello")) == len(GOOD_REQUEST)
    assert find_head_end(GOOD_REQUEST[:-1]) == -1
    assert find_head_end(b"") == -1


def test_find_head_end_byte_by_byte_and_random_splits() -> None:
    data = GOOD_REQUEST + b"\x81\x00"
    assert feed(data, [1] * len(data)) == len(GOOD_REQUEST)
    rng = random.Random(6455)
    for _ in range(200):
        sizes = [rng.randint(1, 40) for _ in range(40)]
        assert feed(data, sizes) == len(GOOD_REQUEST)
    # the terminator split across calls in every way
    for cut in range(len(GOOD_REQUEST) - 5, len(GOOD_REQUEST)):
        assert feed(data, [cut, 1, 1, 1, 1]) == len(GOOD_REQUEST)


def test_find_head_end_limit() -> None:
    head = b"GET / HTTP/1.1\r\nX: " + b"a" * 100 + b"\r\n\r\n"
    assert find_head_end(head, max_size=len(head)) == len(head)
    assert find_head_end(head[:-1], max_size=len(head)) == -1
    assert len(head) == 123
    with raises(431, "request head exceeds 122 bytes"):
        find_head_end(head, max_size=len(head) - 1)
    response = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100 + b"\r\n\r\n"
    with raises(0, f"response head exceeds {len(response) - 2} bytes"):
        find_head_end(response, max_size=len(response) - 2, request=False)


@pytest.mark.parametrize(
    "data, is_request, message",
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", True, "a TLS handshake: is the client using wss://"),
        (b"\x00\x01garbage", True, "not an HTTP request"),
        (b"\x15\x03\x03\x00\x02\x02\x46", False, "a TLS record: is this a wss:// server?"),
        (b"SSH-2.0-OpenSSH", False, "not an HTTP response"),
    ],
)
def test_find_head_end_fails_at_once_on_what_cannot_start_a_head(data, is_request, message) -> None:
    with raises(400 if is_request else 0, message):
        find_head_end(data, request=is_request)


@pytest.mark.parametrize("data, is_request", [(b"\r\n", True), (b"\r\nGE", True), (b"G", True), (b"HT", False), (b"HTTP/1.1 1", False)])
def test_find_head_end_waits_for_a_valid_prefix(data, is_request) -> None:
    assert find_head_end(data, request=is_request) == -1
    with raises(431, f"exceeds {MAX_HANDSHAKE} bytes"):
        find_head_end(b"a" * MAX_HANDSHAKE)
    assert find_head_end(b"a" * (MAX_HANDSHAKE - 1)) == -1


def test_find_head_end_reports_bare_lf_head_so_parse_can_reject_it() -> None:
    head = b"GET / HTTP/1.1\nHost: x\n\n"
    end = find_head_end(head)
    assert end == len(head)
    with raises(400, "bare LF"):
        parse_request(head[:end])
    with raises(0, "bare LF"):
        parse_response(b"HTTP/1.1 101 OK\n\n")


# ------------------------------------------------------------------------------- parse_request


def test_parse_request_valid() -> None:
    method, target, headers = parse_request(GOOD_REQUEST)
    assert method == "GET"
    assert target == "/chat?room=1"
    assert headers[0] == ("Host", "server.example.com")
    assert len(headers) == 5


def test_parse_request_ows_latin1_empty_values_and_bytearray() -> None:
    head = bytearray(
        b"GET http://example.com/x HTTP/1.1\r\n"
        b"Host:example.com\r\n"
        b"X-Spaces: \t a  b \t \r\n"
        b"X-Empty:\r\n"
        b"X-Latin: caf\xe9\r\n"
        b"x-lower: 1\r\n"
        b"\r\n"
    )
    method, target, headers = parse_request(head)
    assert target == "http://example.com/x"
    assert headers == (
        ("Host", "example.com"),
        ("X-Spaces", "a  b"),
        ("X-Empty", ""),
        ("X-Latin", "caf\u00e9"),
        ("x-lower", "1"),
    )
    # HTTP/1.x with x > 1 is treated as 1.1 (RFC 9112 §2.6)
    assert parse_request(b"GET / HTTP/1.9\r\n\r\n") == ("GET", "/", ())


def line(n: int) -> bytes:
    return b"X-Long: " + b"a" * (n - 8)


@pytest.mark.parametrize(
    "head, status, match",
    [
        (b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", 505, "HTTP/1.0 not supported"),
        (b"GET / HTTP/0.9\r\n\r\n", 505, "needs HTTP/1.1"),
        (b"GET / HTTP/2.0\r\n\r\n", 505, "HTTP/2.0 not supported"),
        (b"GET / HTTPS/1.1\r\n\r\n", 400, "bad HTTP version"),
        (b"GET / http/1.1\r\n\r\n", 400, "bad HTTP version"),
        (b"GET / HTTP/1.10\r\n\r\n", 400, "bad HTTP version"),
        (b"GET / HTTP/1\r\n\r\n", 400, "bad HTTP version"),
        (b"GET /\r\n\r\n", 400, "malformed request line"),
        (b"GET  / HTTP/1.1\r\n\r\n", 400, "malformed request line"),
        (b"GET / HTTP/1.1 \r\n\r\n", 400, "malformed request line"),
        (b"GET /a b HTTP/1.1\r\n\r\n", 400, "malformed request line"),
        (b"\r\n\r\n", 400, "empty request line"),
        (b"G(T / HTTP/1.1\r\n\r\n", 400, "method is not a token"),
        (b"GET /caf\xe9 HTTP/1.1\r\n\r\n", 400, "visible ASCII"),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", 400, "visible ASCII"),
        (b"GET chat HTTP/1.1\r\n\r\n", 400, "path"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", 400, "incomplete"),
        (b"GET / HTTP/1.1\r\nHost: x\nY: z\r\n\r\n", 400, "line 2 of the HTTP request contains a bare LF"),
        (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400, "bare CR"),
        (b"GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 400, "NUL"),
        (b"GET /\0 HTTP/1.1\r\n\r\n", 400, "line 1 of the HTTP request contains a NUL"),
        (b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400, "obsolete line folding"),
        (b"GET / HTTP/1.1\r\n\tX: a\r\n\r\n", 400, "obsolete line folding"),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "whitespace between header name and colon"),
        (b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 400, "whitespace between header name and colon"),
        (b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400, "header name is not a token"),
        (b"GET / HTTP/1.1\r\nH\xe9: x\r\n\r\n", 400, "header name is not a token"),
        (b"GET / HTTP/1.1\r\n: x\r\n\r\n", 400, "empty header name"),
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "without a colon"),
        (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, "control character 0x01 in the value of header X"),
        (b"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400, "control character 0x7f"),
        (b"GET /" + b"a" * MAX_LINE + b" HTTP/1.1\r\n\r\n", 414, "request line too long"),
        (b"GET / HTTP/1.1\r\n" + line(MAX_LINE + 1) + b"\r\n\r\n", 431, "header line too long"),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n", 431, "too many header fields: 129 > 128"),
    ],
)
def test_parse_request_rejects(head: bytes, status: int, match: str) -> None:
    with raises(status, match):
        parse_request(head)


def test_parse_request_limits_are_inclusive_and_configurable() -> None:
    ok = b"GET / HTTP/1.1\r\n" + line(MAX_LINE) + b"\r\n" + b"X: y\r\n" * (MAX_HEADERS - 1) + b"\r\n"
    assert len(parse_request(ok)[2]) == MAX_HEADERS
    with raises(431, "too many header fields: 2 > 1"):
        parse_request(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", max_headers=1)
    assert parse_request(b"GET / HTTP/1.1\r\nA: 123456789012\r\n\r\n", max_line=15)
    with raises(431, "header line too long: 16 bytes > 15"):
        parse_request(b"GET / HTTP/1.1\r\nA: 1234567890123\r\n\r\n", max_line=15)
    with raises(414, "request line too long: 16 bytes > 15"):
        parse_request(b"GET /12 HTTP/1.1\r\n\r\n", max_line=15)


# ------------------------------------------------------------------------------- parse_response


def test_parse_response_valid() -> None:
    status, reason, headers = parse_response(GOOD_RESPONSE)
    assert (status, reason) == (101, "Switching Protocols")
    assert headers[2] == ("Sec-WebSocket-Accept", RFC_ACCEPT)
    assert parse_response(bytearray(b"HTTP/1.1 101\r\n\r\n")) == (101, "", ())
    assert parse_response(b"HTTP/1.1 101 \r\n\r\n") == (101, "", ())
    assert parse_response(b"HTTP/1.0 403 Forbidden \xe9\r\nX:y\r\n\r\n") == (
        403,
        "Forbidden \u00e9",
        (("X", "y"),),
    )


@pytest.mark.parametrize(
    "head, match",
    [
        (b"HTTP/1.1 10 Switching\r\n\r\n", "malformed HTTP status line"),
        (b"HTTP/1.1 1011 x\r\n\r\n", "malformed HTTP status line"),
        (b"HTTP/1.1  101 x\r\n\r\n", "malformed HTTP status line"),
        (b"ICY 200 OK\r\n\r\n", "malformed HTTP status line"),
        (b"HTTP/1.1 abc x\r\n\r\n", "malformed HTTP status line"),
        (b"HTTP/1.1 \xd9\xa1\xd9\xa0\xd9\xa1 x\r\n\r\n", "malformed HTTP status line"),
        (b"HTTP/2.0 101 x\r\n\r\n", "unsupported HTTP version"),
        (b"HTTP/1.0 101 Switching Protocols\r\n\r\n", "HTTP/1.0 response"),
        (b"HTTP/1.1 099 x\r\n\r\n", "invalid HTTP status code 99"),
        (b"HTTP/1.1 101 a\x01b\r\n\r\n", "control character 0x01 in the reason phrase"),
        (b"HTTP/1.1 101 x\r\nUpgrade websocket\r\n\r\n", "without a colon"),
        (b"HTTP/1.1 101 x\r\nUpgrade: a\r\n b\r\n\r\n", "obsolete line folding"),
        (b"HTTP/1.1 101 x\r\nA: 1\r\n", "incomplete"),
        (b"HTTP/1.1 101 x" + b"y" * MAX_LINE + b"\r\n\r\n", "status line too long"),
        (b"HTTP/1.1 101 x\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n", "too many header fields"),
    ],
)
def test_parse_response_rejects(head: bytes, match: str) -> None:
    with raises(0, match):
        parse_response(head)


# ------------------------------------------------------------------------------- validate_request


def test_validate_request_valid() -> None:
    key, protocols, offers = validate_request("GET", request_headers())
    assert (key, protocols, offers) == (RFC_KEY, (), [])


def test_validate_request_tolerant_forms() -> None:
    headers = request_headers(
        Upgrade="WebSocket, h2c, HTTP/2.0", Connection="keep-alive, upgrade"
    ) + [
        ("sec-websocket-protocol", "chat, , superchat"),
        ("Sec-WebSocket-Protocol", "v2.json"),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ("SEC-WEBSOCKET-EXTENSIONS", "permessage-deflate, x-foo"),
        ("Content-Length", "0"),
        ("Origin", "https://example.com"),
    ]
    key, protocols, offers = validate_request("GET", headers)
    assert key == RFC_KEY
    assert protocols == ("chat", "superchat", "v2.json")
    assert offers == [
        ("permessage-deflate", [("client_max_window_bits", None)]),
        ("permessage-deflate", []),
        ("x-foo", []),
    ]
    # several Connection and Upgrade headers are combined (RFC 9110 §5.3)
    headers = request_headers(Connection="keep-alive") + [("Connection", "Upgrade")]
    assert validate_request("GET", headers)[0] == RFC_KEY
    # header names are case-insensitive
    headers = [(k.upper(), v) for k, v in request_headers()]
    assert validate_request("GET", headers)[0] == RFC_KEY


@pytest.mark.parametrize(
    "method, headers, status, match",
    [
        ("POST", request_headers(), 405, "method POST not allowed"),
        ("get", request_headers(), 405, "method get not allowed"),
        ("GET", request_headers(Host=None), 400, "missing Host header"),
        ("GET", request_headers() + [("host", "b")], 400, "Host header appears 2 times"),
        ("GET", request_headers(Host=""), 400, "empty Host header"),
        ("GET", request_headers(Upgrade=None), 400, "missing Upgrade header"),
        ("GET", request_headers(Upgrade=""), 400, "missing Upgrade header"),
        ("GET", request_headers(Upgrade="h2c"), 400, "does not contain 'websocket'"),
        ("GET", request_headers(Upgrade="websockets"), 400, "does not contain 'websocket'"),
        ("GET", request_headers(Upgrade="web socket"), 400, "invalid Upgrade header element"),
        ("GET", request_headers(Connection=None), 400, "missing Connection header"),
        ("GET", request_headers(Connection="keep-alive"), 400, "does not contain 'Upgrade'"),
        ("GET", request_headers(Connection="upgraded"), 400, "does not contain 'Upgrade'"),
        ("GET", request_headers(Connection="Upgrade, a b"), 400, "invalid Connection value"),
        ("GET", request_headers(Sec_WebSocket_Version=None), 426, "missing Sec-WebSocket-Version"),
        ("GET", request_headers(Sec_WebSocket_Version="8"), 426, "unsupported Sec-WebSocket-Version '8'"),
        ("GET", request_headers(Sec_WebSocket_Version="13, 8"), 426, "unsupported Sec-WebSocket-Version"),
        ("GET", request_headers(Sec_WebSocket_Version="013"), 426, "only 13"),
        ("GET", request_headers() + [("Sec-WebSocket-Version", "13")], 426, "'13, 13'"),
        ("GET", request_headers(Sec_WebSocket_Key=None), 400, "missing Sec-WebSocket-Key"),
        ("GET", request_headers() + [("Sec-WebSocket-Key", RFC_KEY)], 400, "Sec-WebSocket-Key header appears 2 times"),
        ("GET", request_headers(Sec_WebSocket_Key="not base64!"), 400, "not valid base64"),
        ("GET", request_headers(Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZQ"), 400, "not valid base64"),
        ("GET", request_headers(Sec_WebSocket_Key="dGhlIHNh bXBsZSBub25jZQ=="), 400, "not valid base64"),
        ("GET", request_headers(Sec_WebSocket_Key="cl\u00e9"), 400, "not valid base64"),
        ("GET", request_headers(Sec_WebSocket_Key="c2hvcnQ="), 400, "must decode to 16 bytes, got 5"),
        ("GET", request_headers(Sec_WebSocket_Key=""), 400, "must decode to 16 bytes, got 0"),
        ("GET", request_headers(Sec_WebSocket_Protocol="chat, super chat"), 400, "'super chat' is not a token"),
        ("GET", request_headers(Sec_WebSocket_Protocol="chat/1"), 400, "is not a token"),
        ("GET", request_headers(Sec_WebSocket_Protocol=" , "), 400, "empty Sec-WebSocket-Protocol"),
        ("GET", request_headers(Sec_WebSocket_Extensions="permessage-deflate;"), 400, "expected a parameter name"),
        ("GET", request_headers(Sec_WebSocket_Extensions=""), 400, "no extension in the list"),
        ("GET", request_headers(Content_Length="5"), 400, "Content-Length '5'"),
        ("GET", request_headers(Transfer_Encoding="chunked"), 400, "Transfer-Encoding"),
    ],
)
def test_validate_request_rejects(method: str, headers: list, status: int, match: str) -> None:
    with raises(status, match):
        validate_request(method, headers)


def test_validate_request_checks_version_before_key() -> None:
    # a hixie-76 client: no Sec-WebSocket-Version, no Sec-WebSocket-Key
    headers = request_headers(Sec_WebSocket_Version=None, Sec_WebSocket_Key=None) + [
        ("Sec-WebSocket-Key1", "4 @1  46546xW%0l 1 5"),
    ]
    with raises(426, "Sec-WebSocket-Version"):
        validate_request("GET", headers)


# ------------------------------------------------------------------------------- validate_response


def test_validate_response_valid() -> None:
    assert validate_response(response_headers(), RFC_KEY, []) == (None, [])
    headers = response_headers(
        Connection="keep-alive, UPGRADE", Upgrade="WebSocket"
    ) + [
        ("Sec-WebSocket-Protocol", "superchat"),
        ("Sec-WebSocket-Extensions", 'permessage-deflate; server_max_window_bits="10"'),
    ]
    assert validate_response(headers, RFC_KEY, ["chat", "superchat"]) == (
        "superchat",
        [("permessage-deflate", [("server_max_window_bits", "10")])],
    )


@pytest.mark.parametrize(
    "headers, offered, match",
    [
        (response_headers(Upgrade=None), [], "missing Upgrade header"),
        (response_headers(Upgrade="h2c"), [], "is not 'websocket'"),
        (response_headers(Upgrade="websocket, h2c"), [], "is not 'websocket'"),
        (response_headers(Connection=None), [], "missing Connection header"),
        (response_headers(Connection="close"), [], "of the 101 response does not contain 'Upgrade'"),
        (response_headers(Connection="Upgrade, a b"), [], "invalid Connection value"),
        (response_headers(Sec_WebSocket_Accept=None), [], "missing Sec-WebSocket-Accept"),
        (response_headers() + [("Sec-WebSocket-Accept", RFC_ACCEPT)], [], "appears 2 times"),
        (response_headers(Sec_WebSocket_Accept="x" + RFC_ACCEPT[1:]), [], "wrong Sec-WebSocket-Accept"),
        (response_headers(Sec_WebSocket_Protocol="chat"), [], "'chat', which was not offered \\(offered: none\\)"),
        (response_headers(Sec_WebSocket_Protocol="Chat"), ["chat"], "which was not offered"),
        (response_headers(Sec_WebSocket_Protocol="chat, superchat"), ["chat", "superchat"], "exactly one subprotocol"),
        (response_headers(Sec_WebSocket_Protocol=""), ["chat"], "exactly one subprotocol"),
        (response_headers(Sec_WebSocket_Protocol="a b"), ["a b"], "is not a token"),
        (response_headers() + [("Sec-WebSocket-Protocol", "chat")] * 2, ["chat"], "more than once"),
        (response_headers(Sec_WebSocket_Extensions="x; y=\"a b\""), [], "not a token once unquoted"),
    ],
)
def test_validate_response_rejects(headers: list, offered: list, match: str) -> None:
    with raises(0, match):
        validate_response(headers, RFC_KEY, offered)


# ------------------------------------------------------------------------------- extensions


@pytest.mark.parametrize(
    "value, expected",
    [
        ("permessage-deflate", [("permessage-deflate", [])]),
        (
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
            [("permessage-deflate", [("client_max_window_bits", None), ("server_max_window_bits", "10")])],
        ),
        (
            'permessage-deflate;client_max_window_bits="15"',
            [("permessage-deflate", [("client_max_window_bits", "15")])],
        ),
        ('x; a="b\\c"', [("x", [("a", "bc")])]),  # quoted-pair
        ('x; a=""', None),  # empty quoted value is not a token: see malformed
        (
            " \tpermessage-deflate \t;\t server_no_context_takeover \t, \tx ; a = 1 ; b= \"2\"  ",
            [("permessage-deflate", [("server_no_context_takeover", None)]), ("x", [("a", "1"), ("b", "2")])],
        ),
        (
            "permessage-deflate; client_max_window_bits=10, permessage-deflate",
            [("permessage-deflate", [("client_max_window_bits", "10")]), ("permessage-deflate", [])],
        ),
        (", ,a,,b ,", [("a", []), ("b", [])]),
        ("x; p; p=1", [("x", [("p", None), ("p", "1")])]),
        ("X-Foo; Bar=Baz", [("X-Foo", [("Bar", "Baz")])]),  # case kept
    ],
)
def test_parse_extensions_valid(value: str, expected: list | None) -> None:
    if expected is None:
        with raises(400, "not a token once unquoted"):
            parse_extensions(value)
    else:
        assert parse_extensions(value) == expected


@pytest.mark.parametrize(
    "value, match",
    [
        ("", "no extension in the list"),
        (" , ,", "no extension in the list"),
        (";a", "expected an extension name"),
        ("a;", "expected a parameter name \\(a token\\) after ';', found the end"),
        ("a; ;b", "expected a parameter name"),
        ("a;;b", "expected a parameter name"),
        ("a b", "expected ';' or ',' after 'a', found 'b'"),
        ("a=1", "expected ';' or ','"),
        ("a; b=", "expected a token or quoted-string value for parameter 'b', found the end"),
        ("a; b=,c", "expected a token or quoted-string value"),
        ("a; b=1=2", "expected ';' or ','"),
        ("a; b==1", "expected a token or quoted-string value"),
        ("a; b=1 2", "expected ';' or ','"),
        ('a; b="1', "unterminated quoted-string"),
        ('a; b="1\\', "unterminated quoted-string"),
        ('a; b="1 2"', "not a token once unquoted"),
        ('a; b="1,2"', "not a token once unquoted"),
        ('a; b=""', "not a token once unquoted"),
        ('a; b="\x01"', "invalid character"),
        ('a; b="\\\x01"', "invalid escaped character"),
        ('a; b="1"x', "expected ';' or ','"),
        ('a; "b"=1', "expected a parameter name"),
        ('"a"', "expected an extension name"),
        ("a; b=\u00e9", "expected a token or quoted-string value"),
        ("a\u00e9", "expected ';' or ','"),
        ("a/b", "expected ';' or ','"),
    ],
)
def test_parse_extensions_malformed(value: str, match: str) -> None:
    with raises(400, match):
        parse_extensions(value)


def test_parse_extensions_error_message_has_position() -> None:
    with raises(400, r"invalid Sec-WebSocket-Extensions 'x; a=1 2': expected ';' or ',' after 'x', found '2' at position 7"):  # noqa: E501
        parse_extensions("x; a=1 2")


def test_serialize_extensions() -> None:
    assert (
        serialize_extensions(
            [
                ("permessage-deflate", [("client_max_window_bits", None), ("server_max_window_bits", "10")]),
                ("other", []),
            ]
        )
        == "permessage-deflate; client_max_window_bits; server_max_window_bits=10, other"
    )
    assert serialize_extensions([]) == ""
    for bad in (
        [("a b", [])],
        [("a", [("b c", None)])],
        [("a", [("b", "1 2")])],
        [("a", [("b", "")])],
        [("a", [("b", "x\r\nEvil: 1")])],
    ):
        with pytest.raises(ValueError, match="not a token"):
            serialize_extensions(bad)  # type: ignore[arg-type]


def test_parse_token_list() -> None:
    assert parse_token_list("keep-alive, Upgrade") == ["keep-alive", "Upgrade"]
    assert parse_token_list(" ,a ,\t, b,") == ["a", "b"]
    assert parse_token_list("") == []
    with raises(400, "'a b' is not a token"):
        parse_token_list("x, a b")
    with raises(400, "is not a token"):
        parse_token_list('"quoted"')


# ------------------------------------------------------------------------------- end to end


def test_full_handshake_in_random_splits() -> None:
    rng = random.Random(13)
    for _ in range(50):
        key = generate_key()
        request = build_request(
            "example.com:9000",
            "/ws?token=abc",
            key,
            subprotocols=["v2", "v1"],
            extensions=serialize_extensions([("permessage-deflate", [("client_max_window_bits", None)])]),
            extra_headers=[("Authorization", "Bearer x")],
        )
        trailing = bytes(rng.randrange(256) for _ in range(10))
        sizes = [rng.randint(1, 30) for _ in range(100)]
        end = feed(request + trailing, sizes)
        assert end == len(request)
        method, target, headers = parse_request(request[:end])
        got_key, offered, offers = validate_request(method, headers)
        assert (got_key, offered) == (key, ("v2", "v1"))
        assert offers == [("permessage-deflate", [("client_max_window_bits", None)])]
        response = build_accept_response(
            got_key, subprotocol="v1", extensions="permessage-deflate"
        )
        end = feed(response + trailing, sizes, request=False)
        assert end == len(response)
        status, _, headers = parse_response(response[:end])
        assert status == 101
        assert validate_response(headers, key, ["v2", "v1"]) == (
            "v1",
            [("permessage-deflate", [])],
        )


# ------------------------------------------------------------------------------- properties

_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=_TCHARS, min_size=1, max_size=12)
extension_lists = st.lists(
    st.tuples(tokens, st.lists(st.tuples(tokens, st.none() | tokens), max_size=4)),
    min_size=1,
    max_size=5,
)


@given(extension_lists)
def test_serialize_parse_round_trip(items: list) -> None:
    assert parse_extensions(serialize_extensions(items)) == items


@given(extension_lists, st.randoms(use_true_random=False))
def test_parse_extensions_with_random_ows_and_quotes(items: list, rnd: random.Random) -> None:
    def ows() -> str:
        return rnd.choice(["", " ", "\t", "  \t"])

    parts = []
    for name, params in items:
        text = name
        for pname, pvalue in params:
            text += ows() + ";" + ows() + pname
            if pvalue is not None:
                quoted = rnd.random() < 0.5
                shown = '"' + "".join(("\\" + c) if rnd.random() < 0.2 else c for c in pvalue) + '"' if quoted else pvalue  # noqa: E501
                text += ows() + "=" + ows() + shown
        parts.append(ows() + text + ows())
    if rnd.random() < 0.3:
        parts.insert(rnd.randrange(len(parts) + 1), ows())  # an empty list element
    assert parse_extensions(",".join(parts)) == items


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_parse_extensions_only_raises_invalid_handshake(value: str) -> None:
    try:
        parse_extensions(value)
    except InvalidHandshake as exc:
        assert exc.status == 400


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_parse_request_random_bytes_only_invalid_handshake(data: bytes) -> None:
    for head in (data, data + b"\r\n\r\n", b"GET / HTTP/1.1\r\n" + data + b"\r\n\r\n"):
        try:
            method, target, headers = parse_request(head)
        except InvalidHandshake as exc:
            assert exc.status in (400, 414, 431, 505)
        else:
            try:
                validate_request(method, headers)
            except InvalidHandshake as exc:
                assert exc.status in (400, 405, 426)


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_parse_response_random_bytes_only_invalid_handshake(data: bytes) -> None:
    for head in (data, data + b"\r\n\r\n", b"HTTP/1.1 101 OK\r\n" + data + b"\r\n\r\n"):
        try:
            _, _, headers = parse_response(head)
        except InvalidHandshake as exc:
            assert exc.status == 0
        else:
            try:
                validate_response(headers, RFC_KEY, ["chat"])
            except InvalidHandshake as exc:
                assert exc.status == 0


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(GOOD_REQUEST) - 1), st.integers(0, 255), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_valid_request_only_invalid_handshake(mutations: list) -> None:
    data = bytearray(GOOD_REQUEST)
    for pos, byte, insert in mutations:
        pos = min(pos, len(data) - 1)
        if insert:
            data.insert(pos, byte)
        else:
            data[pos] = byte
    try:
        end = find_head_end(data)
        if end < 0:
            return
        method, target, headers = parse_request(data[:end])
        validate_request(method, headers)
    except InvalidHandshake as exc:
        assert exc.status in (400, 405, 414, 426, 431, 505)
