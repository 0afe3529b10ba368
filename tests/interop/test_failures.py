"""Failure paths against real peers: the close codes wsfast sends when a peer breaks a rule
or a limit (1007, 1009) and the ones it sees, and HTTP rejections of the opening handshake,
all with permessage-deflate negotiated (the faults sit inside compressed payloads).
"""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from wsfast import (
    CloseReceived,
    ConnectionFailed,
    Rejected,
    Request,
    ServerConnection,
)
from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate

from .driver import Client, Server, Session, echo_handler
from .peers import WS_OPTIONS, NodeServer, WebsocketsServer, run_node_client


def _deflate_server(handler=echo_handler, **limits) -> Server:
    return Server(
        lambda: ServerConnection(extensions=[ServerPerMessageDeflate(threshold=0)], **limits), handler
    )


def test_wsfast_server_fails_invalid_utf8_from_node_ws_client(node):
    # ws sends whatever bytes it is given as a text message; wsfast must answer 1007.
    with _deflate_server() as server:
        result = run_node_client(node, {
            "url": server.url,
            "perMessageDeflate": {"threshold": 0},
            "messages": [{"binary": False, "size": 10}, {"binary": False, "rawHex": "68c3a96c6cff6f"}],
        })
        session = server.wait_session(0)
    assert result["error"] is None and result["mismatches"] == [], result
    assert result["close"]["code"] == 1007, result["close"]
    failed = session.first(ConnectionFailed)
    assert failed is not None and failed.code == 1007, session.events
    assert session.conn.close_code_sent == 1007
    assert len(session.messages()) == 1  # the valid message before it went through


def test_wsfast_server_fails_too_big_message_from_websockets_client():
    # 64 KiB of zeros compress to ~100 bytes: the limit must apply after inflating.
    with _deflate_server(max_message_size=1000) as server:
        with connect(server.url, **WS_OPTIONS) as ws:
            ws.send("x" * 1000)  # exactly the limit: fine
            assert ws.recv(timeout=10) == "x" * 1000
            ws.send(b"\x00" * 65536)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        session = server.wait_session(0)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009, info.value
    failed = session.first(ConnectionFailed)
    assert failed is not None and failed.code == 1009
    assert not session.timed_out


def test_wsfast_client_fails_too_big_message_from_node_ws_server(node):
    with NodeServer(node, {"perMessageDeflate": {"threshold": 0}}) as server:
        with Client(server.port, extensions=[ClientPerMessageDeflate()], max_message_size=4096) as client:
            client.send_binary(b"\x00" * 4096)
            assert client.recv().data == b"\x00" * 4096
            client.send_binary(b"\x00" * 4097)  # wsfast may send what it would not accept
            event = client.next_event()
            assert isinstance(event, ConnectionFailed) and event.code == 1009, event
            closed = client.wait_closed()
            assert client.conn.close_code_sent == 1009
            # Having failed the connection, wsfast discards the input (RFC 6455 §7.1.7), ws's
            # closing reply included: the close is not clean, and ws closed TCP promptly.
            assert client.first(CloseReceived) is None, client.events
            assert (closed.code, closed.clean) == (1006, False) and not client.closed_by_timeout
        close = server.expect("close")
    assert close["code"] == 1009


def test_websockets_server_rejects_wsfast_client():
    def process_request(connection, request):
        return connection.respond(403, "no entry for wsfast\n")

    with WebsocketsServer(process_request=process_request) as server:
        with Client(server.port, "/private", extensions=[ClientPerMessageDeflate()]) as client:
            rejected = client.handshake
            assert isinstance(rejected, Rejected), rejected
            assert rejected.status == 403
            assert rejected.body == b"no entry for wsfast\n"
            client.wait_closed()
            assert client.conn.close_tcp


def test_wsfast_server_rejects_websockets_client():
    def handler(session: Session, event) -> None:
        if isinstance(event, Request):
            session.conn.reject(403, body=b"go away\n", headers=[("Content-Type", "text/plain")])
        else:
            echo_handler(session, event)

    with _deflate_server(handler) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(server.url, **WS_OPTIONS)
        session = server.wait_session(0)
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"go away\n"
    assert not session.timed_out


def test_node_ws_server_rejects_wsfast_client(node):
    with NodeServer(node, {"perMessageDeflate": {"threshold": 0}, "rejectStatus": 401}) as server:
        with Client(server.port, extensions=[ClientPerMessageDeflate()]) as client:
            rejected = client.handshake
            assert isinstance(rejected, Rejected), rejected
            assert (rejected.status, rejected.body) == (401, b"rejected by ws_server.js")
            client.wait_closed()
