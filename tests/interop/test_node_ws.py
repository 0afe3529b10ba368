"""wsfast against Node's ``ws`` (tests/interop/package.json pins it), both directions.

(a) a wsfast ``Client`` with permessage-deflate against ``ws_server.js``;
(b) ``ws_client.js`` against a wsfast ``Server`` with permessage-deflate.
Each exchange covers text and binary messages of 0 B … 1 MiB and fragmented sends, checks
the echoes byte for byte, the negotiated parameters on both sides, which messages were
compressed on the wire, and the closing handshake's code and reason on both sides.
"""

from __future__ import annotations

import pytest

from wsfast import Accepted, CloseReceived, TransportClosed, Ping, ServerConnection
from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate

from .common import (
    BINARY,
    TEXT,
    check_compression,
    deflate_of,
    exchange,
    params_of,
    parse_extension_header,
    suite,
)
from .driver import Client, Server, message_compression, parse_frames
from .peers import MAX_SIZE, SIZES, NodeServer, run_node_client, sha256

WS_DEFAULT_THRESHOLD = 1024  # ws's perMessageDeflate.threshold default

# --------------------------------------------------------------------------------------------
# (a) wsfast client -> Node ws server

CLIENT_CASES = {
    # id: (ws server perMessageDeflate, wsfast client factory kwargs,
    #      expected 101 params, expected wsfast PerMessageDeflate params, ws threshold)
    "threshold-0": (
        {"threshold": 0},
        {},
        {},
        dict(local_no_context_takeover=False, remote_no_context_takeover=False,
             local_max_window_bits=15, remote_max_window_bits=15),
        0,
    ),
    # ws applies its threshold only when its own side has no context takeover.
    "default-threshold-server_no_context_takeover": (
        {"serverNoContextTakeover": True},
        {},
        {"server_no_context_takeover": None},
        dict(local_no_context_takeover=False, remote_no_context_takeover=True,
             local_max_window_bits=15, remote_max_window_bits=15),
        WS_DEFAULT_THRESHOLD,
    ),
    "server-imposes-client_no_context_takeover-server_max_window_bits=10": (
        {"threshold": 0, "clientNoContextTakeover": True, "serverMaxWindowBits": 10},
        {},
        {"client_no_context_takeover": None, "server_max_window_bits": "10"},
        dict(local_no_context_takeover=True, remote_no_context_takeover=False,
             local_max_window_bits=15, remote_max_window_bits=10),
        0,
    ),
    "server-sets-client_max_window_bits=9": (
        {"threshold": 0, "clientMaxWindowBits": 9, "serverNoContextTakeover": True},
        {},
        {"server_no_context_takeover": None, "client_max_window_bits": "9"},
        dict(local_no_context_takeover=False, remote_no_context_takeover=True,
             local_max_window_bits=9, remote_max_window_bits=15),
        0,
    ),
    "client-asks-no_context_takeover-both-window-bits-9-and-8": (
        {"threshold": 0},
        dict(server_no_context_takeover=True, client_no_context_takeover=True,
             server_max_window_bits=9, client_max_window_bits=8, threshold=0),
        {"server_no_context_takeover": None, "client_no_context_takeover": None,
         "server_max_window_bits": "9", "client_max_window_bits": "8"},
        dict(local_no_context_takeover=True, remote_no_context_takeover=True,
             local_max_window_bits=8, remote_max_window_bits=9),
        0,
    ),
}


#: Cases where ws echoes each message in several frames, cut at arbitrary byte offsets
#: (inside UTF-8 characters too): wsfast reassembles compressed fragments.
ECHO_FRAGMENTS = {"server-imposes-client_no_context_takeover-server_max_window_bits=10": 3,
                  "client-asks-no_context_takeover-both-window-bits-9-and-8": 5}


@pytest.mark.parametrize("case", list(CLIENT_CASES))
def test_wsfast_client_to_node_ws_server(node, case):
    node_pmd, factory_kwargs, response_params, ext_params, node_threshold = CLIENT_CASES[case]
    config = {"perMessageDeflate": node_pmd, "echoFragments": ECHO_FRAGMENTS.get(case, 1)}
    with NodeServer(node, config) as server:
        with Client(server.port, "/echo", extensions=[ClientPerMessageDeflate(**factory_kwargs)],
                    max_message_size=MAX_SIZE) as client:
            assert isinstance(client.handshake, Accepted), client.handshake
            assert client.handshake.extensions == ("permessage-deflate",)
            handshake = server.expect("handshake")
            assert parse_extension_header(handshake["response"]) == response_params
            assert params_of(deflate_of(client.conn)) == ext_params

            sent = exchange(client)

            # Node's side: it received every message intact (sizes and digests).
            received = [server.expect("message") for _ in sent]
            expected = [(op == BINARY, size) for op, size in sent]
            assert [(r["binary"], r["length"]) for r in received] == expected
            digests = [sha256(payload) for _, payload, _ in suite()]
            assert [r["sha256"] for r in received] == digests

            # On the wire: ws compresses exactly the messages of at least `threshold` bytes;
            # wsfast (threshold 32 unless told, and not when a compressed form would be larger
            # under no context takeover) compresses the large ones.
            check_compression(client.wire_in, sent, node_threshold, "ws -> wsfast")
            check_compression(client.wire_out, sent, None, "wsfast -> ws")
            k = config["echoFragments"]
            data_frames = [f for f in parse_frames(client.wire_in) if f.opcode < 8]
            assert len(data_frames) == sum(min(k, max(size, 1)) for _, size in sent)
            out = message_compression(client.wire_out)
            assert all(rsv1 for (op, rsv1), (_, size) in zip(out, sent) if size >= 1000 and op == TEXT), out

            closed = client.close(4001, "wsfast client bye ✓")
            assert closed.clean and not client.closed_by_timeout, (closed, client.events[-3:])
            # ws answers with the code and reason it received.
            assert client.first(CloseReceived) == CloseReceived(4001, "wsfast client bye ✓")
        close = server.expect("close")
        assert (close["code"], close["reason"]) == (4001, "wsfast client bye ✓")


def test_node_ws_server_closes_wsfast_client(node):
    with NodeServer(node, {"perMessageDeflate": {"threshold": 0}}) as server:
        with Client(server.port, extensions=[ClientPerMessageDeflate()], max_message_size=MAX_SIZE) as client:
            assert isinstance(client.handshake, Accepted), client.handshake
            client.send_text("before the close")
            assert client.recv().data == "before the close"
            client.send_text("__close__ 4002 node server bye ✓")
            event = client.next_event()
            assert event == CloseReceived(4002, "node server bye ✓")
            closed = client.wait_closed()
            assert closed == TransportClosed(4002, "node server bye ✓", True)
            assert not client.closed_by_timeout
            assert client.conn.close_code_sent == 4002  # the engine echoed the code
        close = server.expect("close")
        assert close["code"] == 4002  # what wsfast's close frame carried


# --------------------------------------------------------------------------------------------
# (b) Node ws client -> wsfast server

SERVER_CASES = {
    # id: (ws client perMessageDeflate, wsfast ServerPerMessageDeflate kwargs,
    #      expected 101 params, expected server-side PerMessageDeflate params,
    #      ws threshold, wsfast threshold)
    "threshold-0": (
        {"threshold": 0},
        dict(threshold=0),
        {},
        dict(local_no_context_takeover=False, remote_no_context_takeover=False,
             local_max_window_bits=15, remote_max_window_bits=15),
        0,
        0,
    ),
    # ws applies its threshold only when its own side has no context takeover.
    "default-thresholds-client_no_context_takeover": (
        {"clientNoContextTakeover": True},
        {},
        {"client_no_context_takeover": None},
        dict(local_no_context_takeover=False, remote_no_context_takeover=True,
             local_max_window_bits=15, remote_max_window_bits=15),
        WS_DEFAULT_THRESHOLD,
        32,
    ),
    "client-asks-server_no_context_takeover-server_max_window_bits=10-client_max_window_bits=9": (
        {"threshold": 0, "serverNoContextTakeover": True, "serverMaxWindowBits": 10, "clientMaxWindowBits": 9},
        dict(threshold=0),
        {"server_no_context_takeover": None, "server_max_window_bits": "10", "client_max_window_bits": "9"},
        dict(local_no_context_takeover=True, remote_no_context_takeover=False,
             local_max_window_bits=10, remote_max_window_bits=9),
        0,
        None,  # no context takeover: wsfast may send an incompressible message uncompressed
    ),
    "server-imposes-everything-window-bits-9": (
        {"threshold": 0},
        dict(server_no_context_takeover=True, client_no_context_takeover=True,
             server_max_window_bits=9, client_max_window_bits=9, threshold=0),
        {"server_no_context_takeover": None, "client_no_context_takeover": None,
         "server_max_window_bits": "9", "client_max_window_bits": "9"},
        dict(local_no_context_takeover=True, remote_no_context_takeover=True,
             local_max_window_bits=9, remote_max_window_bits=9),
        0,
        None,
    ),
    "server-window-bits-8": (
        {"threshold": 0},
        dict(server_max_window_bits=8, client_max_window_bits=8, threshold=0),
        {"server_max_window_bits": "8", "client_max_window_bits": "8"},
        dict(local_no_context_takeover=False, remote_no_context_takeover=False,
             local_max_window_bits=8, remote_max_window_bits=8),
        0,
        0,
    ),
}

NODE_MESSAGES = [{"binary": b, "size": s} for s in SIZES for b in (False, True)] + [
    {"binary": False, "size": 100 * 1024, "fragments": 4},
    {"binary": True, "size": 100 * 1024, "fragments": 3},
    {"binary": False, "size": 1000, "fragments": 2},
    {"binary": False, "size": 1000, "fragments": 7, "byteSplit": True},  # cuts inside characters
]
FRAGMENTED = sum(1 for m in NODE_MESSAGES if m.get("fragments", 1) > 1)


def _deflate_server(**kwargs) -> Server:
    return Server(
        lambda: ServerConnection(extensions=[ServerPerMessageDeflate(**kwargs)], max_message_size=MAX_SIZE)
    )


@pytest.mark.parametrize("case", list(SERVER_CASES))
def test_node_ws_client_to_wsfast_server(node, case):
    node_pmd, factory_kwargs, response_params, ext_params, node_threshold, wsfast_threshold = SERVER_CASES[case]
    with _deflate_server(**factory_kwargs) as server:
        result = run_node_client(node, {
            "url": f"{server.url}/echo",
            "perMessageDeflate": node_pmd,
            "messages": NODE_MESSAGES,
            "close": {"by": "client", "code": 4001, "reason": "node client bye ✓"},
        })
        session = server.wait_session(0)
    assert result["error"] is None, result
    assert result["mismatches"] == [], result["mismatches"]
    assert len(result["sent"]) == len(NODE_MESSAGES)
    # ws pinged between the fragments of each fragmented message; wsfast answered each.
    assert result["pongs"] == FRAGMENTED
    assert [e.data for e in session.events if isinstance(e, Ping)] == [b"between fragments"] * FRAGMENTED

    # Negotiation, seen from both sides.
    assert session.request is not None
    assert any(name == "permessage-deflate" for name, _ in session.request.extensions), session.request
    assert parse_extension_header(result["response"]) == response_params
    assert "permessage-deflate" in (result["extensions"] or "")
    assert params_of(deflate_of(session.conn)) == ext_params

    # wsfast received every message intact.
    got = session.messages()
    assert [(type(m).__name__, len(m.data.encode() if isinstance(m.data, str) else m.data)) for m in got] == [
        ("BinaryMessage" if s["binary"] else "TextMessage", s["length"]) for s in result["sent"]
    ]
    assert [sha256(m.data) for m in got] == [s["sha256"] for s in result["sent"]]

    sent = [(BINARY if s["binary"] else TEXT, s["length"]) for s in result["sent"]]
    check_compression(session.wire_in, sent, node_threshold, "ws -> wsfast")
    check_compression(session.wire_out, sent, wsfast_threshold, "wsfast -> ws")

    # The closing handshake: ws sent 4001 + reason; wsfast echoed 4001.
    assert session.first(CloseReceived) == CloseReceived(4001, "node client bye ✓")
    assert session.conn.close_code_sent == 4001
    assert result["close"] == {"code": 4001, "reason": ""}  # wsfast echoes the code only
    closed = session.first(TransportClosed)
    assert closed is not None and closed.clean, session.events[-3:]
    assert not session.timed_out


def test_wsfast_server_closes_node_ws_client(node):
    with _deflate_server() as server:
        result = run_node_client(node, {
            "url": server.url,
            "perMessageDeflate": {"threshold": 0},
            "messages": [{"binary": False, "size": 100}],
            "close": {"by": "server", "code": 4002, "reason": "wsfast server bye ✓"},
        })
        session = server.wait_session(0)
    assert result["error"] is None, result
    assert result["mismatches"] == []
    assert result["close"] == {"code": 4002, "reason": "wsfast server bye ✓"}
    assert session.conn.close_code_sent == 4002
    # ws answers with the code and reason it received.
    assert session.first(CloseReceived) == CloseReceived(4002, "wsfast server bye ✓")
    closed = session.first(TransportClosed)
    assert closed is not None and closed.clean
    assert not session.timed_out
