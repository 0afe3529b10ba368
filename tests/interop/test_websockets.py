"""wsfast against the ``websockets`` library (its threaded ``sync`` API), both directions.

(c) a wsfast ``Client`` against a ``websockets.sync.server`` echo server;
(d) a ``websockets.sync.client`` against a wsfast ``Server``.
Various window bits and no_context_takeover settings, messages of 0 B … 1 MiB and
fragmented ones, exact echoes, negotiated parameters on both sides, RSV1 on the wire,
close codes and reasons both ways. websockets pings every 0.2 s throughout, so wsfast's
automatic pongs (and control frames between fragments) are exercised too.
"""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.sync.client import connect

from wsfast import Accepted, CloseReceived, Ping, Pong, ServerConnection
from wsfast import TransportClosed as Closed
from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate

from .common import (
    TEXT,
    assert_same,
    check_compression,
    deflate_of,
    exchange,
    params_of,
    parse_extension_header,
    suite,
)
from .driver import Client, Server
from .peers import MAX_SIZE, WS_OPTIONS, WebsocketsServer, sha256, split

# --------------------------------------------------------------------------------------------
# (c) wsfast client -> websockets server

CLIENT_CASES = {
    # id: (websockets serve() kwargs, wsfast client factory kwargs,
    #      expected 101 params, expected wsfast PerMessageDeflate params)
    "websockets-default-compression": (
        {},  # compression="deflate": server and client windows 12
        {},
        {"server_max_window_bits": "12", "client_max_window_bits": "12"},
        dict(local_no_context_takeover=False, remote_no_context_takeover=False,
             local_max_window_bits=12, remote_max_window_bits=12),
    ),
    "server-imposes-no_context_takeover-both": (
        {"extensions": [ServerPerMessageDeflateFactory(server_no_context_takeover=True,
                                                       client_no_context_takeover=True)]},
        {},
        {"server_no_context_takeover": None, "client_no_context_takeover": None},
        dict(local_no_context_takeover=True, remote_no_context_takeover=True,
             local_max_window_bits=15, remote_max_window_bits=15),
    ),
    "server-window-bits-9": (
        {"extensions": [ServerPerMessageDeflateFactory(server_max_window_bits=9, client_max_window_bits=9)]},
        {"threshold": 0},
        {"server_max_window_bits": "9", "client_max_window_bits": "9"},
        dict(local_no_context_takeover=False, remote_no_context_takeover=False,
             local_max_window_bits=9, remote_max_window_bits=9),
    ),
    "client-asks-server_no_context_takeover-window-bits-10-and-11": (
        {"extensions": [ServerPerMessageDeflateFactory()]},
        dict(server_no_context_takeover=True, server_max_window_bits=10, client_max_window_bits=11, threshold=0),
        {"server_no_context_takeover": None, "server_max_window_bits": "10", "client_max_window_bits": "11"},
        dict(local_no_context_takeover=False, remote_no_context_takeover=True,
             local_max_window_bits=11, remote_max_window_bits=10),
    ),
}


@pytest.mark.parametrize("case", list(CLIENT_CASES))
def test_wsfast_client_to_websockets_server(case):
    serve_kwargs, factory_kwargs, response_params, ext_params = CLIENT_CASES[case]
    with WebsocketsServer(**serve_kwargs) as server:
        with Client(server.port, "/echo", extensions=[ClientPerMessageDeflate(**factory_kwargs)],
                    max_message_size=MAX_SIZE) as client:
            assert isinstance(client.handshake, Accepted), client.handshake
            assert client.handshake.extensions == ("permessage-deflate",)
            assert params_of(deflate_of(client.conn)) == ext_params

            sent = exchange(client)

            # websockets compresses every message (it has no threshold).
            check_compression(client.wire_in, sent, 0, "websockets -> wsfast")
            # websockets pings every 0.2 s: wait for one, which wsfast answers by itself.
            while not any(isinstance(e, Ping) for e in client.events):
                assert isinstance(client.next_event(timeout=2), (Ping, Pong))

            closed = client.close(4001, "wsfast client bye ✓")
            # websockets answers with the code and reason it received.
            assert closed == Closed(4001, "wsfast client bye ✓", True), client.events[-3:]
            assert not client.closed_by_timeout
        record = server.record()
    assert record["error"] is None, record["error"]
    assert parse_extension_header(record["response"]) == response_params
    assert record["messages"] == [
        ("str" if op == TEXT else "bytes", len(p), sha256(p)) for op, p, _ in suite()
    ]
    assert (record["close_rcvd"].code, record["close_rcvd"].reason) == (4001, "wsfast client bye ✓")


def test_websockets_server_closes_wsfast_client():
    with WebsocketsServer() as server:
        with Client(server.port, extensions=[ClientPerMessageDeflate()]) as client:
            client.send_binary(b"\x00" * 5000)
            assert client.recv().data == b"\x00" * 5000
            client.send_text("__close__ 4002 websockets server bye ✓")
            assert client.first(CloseReceived) is None
            closed = client.wait_closed()
            assert client.first(CloseReceived) == CloseReceived(4002, "websockets server bye ✓")
            assert closed == Closed(4002, "websockets server bye ✓", True)
            assert not client.closed_by_timeout
        record = server.record()
    assert (record["close_rcvd"].code, record["close_rcvd"].reason) == (4002, "")


# --------------------------------------------------------------------------------------------
# (d) websockets client -> wsfast server

SERVER_CASES = {
    # id: (websockets connect() kwargs, wsfast ServerPerMessageDeflate kwargs,
    #      expected 101 params, expected server-side PerMessageDeflate params, wsfast threshold)
    "defaults": (
        {},
        {},
        {},
        dict(local_no_context_takeover=False, remote_no_context_takeover=False,
             local_max_window_bits=15, remote_max_window_bits=15),
        32,
    ),
    "client-asks-no_context_takeover-both-window-bits-10-and-9": (
        {"extensions": [ClientPerMessageDeflateFactory(server_no_context_takeover=True,
                                                       client_no_context_takeover=True,
                                                       server_max_window_bits=10,
                                                       client_max_window_bits=9)]},
        dict(threshold=0),
        {"server_no_context_takeover": None, "client_no_context_takeover": None,
         "server_max_window_bits": "10", "client_max_window_bits": "9"},
        dict(local_no_context_takeover=True, remote_no_context_takeover=True,
             local_max_window_bits=10, remote_max_window_bits=9),
        None,  # no context takeover: an incompressible message may go out uncompressed
    ),
    "server-imposes-no_context_takeover-window-bits-9": (
        {},
        dict(server_no_context_takeover=True, client_no_context_takeover=True,
             server_max_window_bits=9, client_max_window_bits=9, threshold=0),
        {"server_no_context_takeover": None, "client_no_context_takeover": None,
         "server_max_window_bits": "9", "client_max_window_bits": "9"},
        dict(local_no_context_takeover=True, remote_no_context_takeover=True,
             local_max_window_bits=9, remote_max_window_bits=9),
        None,
    ),
    "server-window-bits-12": (
        {},
        dict(server_max_window_bits=12, client_max_window_bits=12, threshold=0),
        {"server_max_window_bits": "12", "client_max_window_bits": "12"},
        dict(local_no_context_takeover=False, remote_no_context_takeover=False,
             local_max_window_bits=12, remote_max_window_bits=12),
        0,
    ),
}


def _deflate_server(**kwargs) -> Server:
    return Server(
        lambda: ServerConnection(extensions=[ServerPerMessageDeflate(**kwargs)], max_message_size=MAX_SIZE)
    )


def _ws_exchange(ws) -> None:
    for i, (opcode, payload, fragments) in enumerate(suite()):
        if fragments == 1:
            ws.send(payload)
        else:
            ws.send(split(payload, fragments))  # an iterable: one frame per item
        echo = ws.recv(timeout=10)
        assert type(echo) is type(payload), f"message #{i}: echo is {type(echo).__name__}"
        assert_same(echo, payload, f"echo of message #{i}")


@pytest.mark.parametrize("case", list(SERVER_CASES))
def test_websockets_client_to_wsfast_server(case):
    connect_kwargs, factory_kwargs, response_params, ext_params, wsfast_threshold = SERVER_CASES[case]
    with _deflate_server(**factory_kwargs) as server:
        with connect(f"{server.url}/echo", **WS_OPTIONS, **connect_kwargs) as ws:
            response = ws.response.headers.get("Sec-WebSocket-Extensions")
            _ws_exchange(ws)
            assert ws.ping(b"ping from websockets").wait(5), "wsfast did not answer a ping"
            ws.close(4001, "websockets client bye ✓")
            close_rcvd = ws.protocol.close_rcvd
        session = server.wait_session(0)

    assert parse_extension_header(response) == response_params
    assert session.request is not None
    assert any(name == "permessage-deflate" for name, _ in session.request.extensions)
    assert params_of(deflate_of(session.conn)) == ext_params
    assert Ping(b"ping from websockets") in session.events

    expected = suite()
    got = session.messages()
    assert [(type(m.data).__name__, len(m.data), sha256(m.data)) for m in got] == [
        (type(p).__name__, len(p), sha256(p)) for _, p, _ in expected
    ]
    sent = [(op, len(p.encode()) if op == TEXT else len(p)) for op, p, _ in expected]
    check_compression(session.wire_in, sent, 0, "websockets -> wsfast")  # websockets compresses all
    check_compression(session.wire_out, sent, wsfast_threshold, "wsfast -> websockets")

    assert session.first(CloseReceived) == CloseReceived(4001, "websockets client bye ✓")
    assert (close_rcvd.code, close_rcvd.reason) == (4001, "")  # wsfast echoes the code only
    closed = session.first(Closed)
    assert closed is not None and closed.clean, session.events[-3:]
    assert not session.timed_out


def test_wsfast_server_closes_websockets_client():
    with _deflate_server() as server:
        with connect(server.url, **WS_OPTIONS) as ws:
            ws.send("__close__ 4002 wsfast server bye ✓")
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        session = server.wait_session(0)
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "wsfast server bye ✓")
    assert session.conn.close_code_sent == 4002
    # websockets answers with the code and reason it received.
    assert session.first(CloseReceived) == CloseReceived(4002, "wsfast server bye ✓")
    closed = session.first(Closed)
    assert closed is not None and closed.clean


def test_subprotocol_negotiation_both_ways():
    with WebsocketsServer(subprotocols=["chat.v2", "chat.v1"]) as server:
        with Client(server.port, subprotocols=["chat.v1", "chat.v3"], extensions=[ClientPerMessageDeflate()]) as client:
            assert isinstance(client.handshake, Accepted) and client.handshake.subprotocol == "chat.v1"
            assert client.conn.subprotocol == "chat.v1"
            client.close(1000)
    with Server(lambda: ServerConnection(subprotocols=["chat.v2", "chat.v1"])) as server:
        with connect(server.url, subprotocols=["chat.v1", "chat.v2"], **WS_OPTIONS) as ws:
            assert ws.subprotocol == "chat.v1"  # wsfast picks the client's first acceptable offer
            ws.send("hi")
            assert ws.recv(timeout=10) == "hi"
        session = server.wait_session(0)
    assert session.request.subprotocols == ("chat.v1", "chat.v2")
    assert session.conn.subprotocol == "chat.v1"
