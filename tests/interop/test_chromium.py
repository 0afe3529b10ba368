"""wsfast server against a real browser: headless Chromium (Debian's ``chromium`` package).

A page served by a separate ``http.server`` thread on loopback opens a WebSocket to each of
two wsfast servers in turn (one with permessage-deflate defaults, one with no context
takeover and 8-bit windows both ways). Chromium offers permessage-deflate, the servers accept
it; the page sends text and binary (ArrayBuffer) messages and checks the echoes, takes 1 MiB
text and binary messages from the server and reports their SHA-256, sends its report over
the WebSocket and closes with 1000. The server pings; Chromium must pong.
"""

from __future__ import annotations

import json
import time

from wsfast import BinaryMessage, CloseReceived, TransportClosed, Pong, Request, ServerConnection, TextMessage
from wsfast.permessage_deflate import ServerPerMessageDeflate

from .common import deflate_of, params_of
from .driver import Server, Session, echo_handler, message_compression
from .peers import MAX_SIZE, HERE, Chromium, PageServer, binary_payload, sha256, text_payload


def chromium_handler(session: Session, event) -> None:
    conn = session.conn
    if isinstance(event, Request):
        conn.accept()
        conn.send_ping(b"wsfast ping")  # browsers answer pings themselves
    elif isinstance(event, TextMessage) and event.data.startswith("GIMME "):
        _, kind, size = event.data.split()
        if kind == "text":
            conn.send_text(text_payload(int(size), seed=7))
        else:
            conn.send_binary(binary_payload(int(size), seed=7))
    elif isinstance(event, TextMessage) and event.data.startswith("RESULT "):
        session.state["report"] = json.loads(event.data[len("RESULT "):])
    else:
        echo_handler(session, event)


CONFIGS = {
    "defaults": (
        {},
        dict(local_no_context_takeover=False, remote_no_context_takeover=False,
             local_max_window_bits=15, remote_max_window_bits=15),
        "permessage-deflate",
    ),
    "no_context_takeover-window-bits-8": (
        dict(server_no_context_takeover=True, client_no_context_takeover=True,
             server_max_window_bits=8, client_max_window_bits=8, threshold=0),
        dict(local_no_context_takeover=True, remote_no_context_takeover=True,
             local_max_window_bits=8, remote_max_window_bits=8),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=8; client_max_window_bits=8",
    ),
}


def _server(kwargs) -> Server:
    return Server(
        lambda: ServerConnection(extensions=[ServerPerMessageDeflate(**kwargs)], max_message_size=MAX_SIZE),
        chromium_handler,
        timeout=20,
    )


def test_chromium_client_to_wsfast_server(chromium, tmp_path):
    page = (HERE / "chromium_page.html").read_bytes()
    servers = {name: _server(kwargs) for name, (kwargs, _, _) in CONFIGS.items()}
    with servers["defaults"] as a, servers["no_context_takeover-window-bits-8"] as b:
        with PageServer({"/": page}) as http:
            url = f"http://127.0.0.1:{http.port}/?ports={a.port},{b.port}"
            profile = tmp_path / "profile"
            profile.mkdir()
            started = time.monotonic()
            with Chromium(chromium, url, profile) as browser:
                try:
                    sessions = {name: srv.wait_session(0, timeout=25 - (time.monotonic() - started))
                                for name, srv in servers.items()}
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\n--- chromium output ---\n{browser.log()}") from None

    for name, session in sessions.items():
        _, ext_params, response = CONFIGS[name]
        where = f"[{name}]"
        # The browser offered permessage-deflate and the server accepted it.
        assert session.request is not None, where
        offered = [n for n, _ in session.request.extensions]
        assert "permessage-deflate" in offered, (where, session.request.extensions)
        assert params_of(deflate_of(session.conn)) == ext_params, where

        report = session.state.get("report")
        assert report is not None, (where, session.events[:3], session.error)
        assert "error" not in report, (where, report)
        assert report["extensions"] == response, (where, report["extensions"])
        failed = [c for c in report["checks"] if not c["ok"]]
        assert len(report["checks"]) == 4 and not failed, (where, report["checks"])
        assert report["digests"] == {
            "text": sha256(text_payload(1 << 20, seed=7)),
            "binary": sha256(binary_payload(1 << 20, seed=7)),
        }, where

        # Chromium compressed its messages (RSV1), and so did wsfast the large texts (the
        # binary ones too with context takeover; without, wsfast sends a message that does
        # not shrink uncompressed, and an 8-bit window cannot reach the 251-byte period of
        # binary_payload's compressible half).
        received = message_compression(session.wire_in)
        assert received[0] == (1, True), (where, received)  # the 30 KB text
        sent = message_compression(session.wire_out)
        assert sent[0] == (1, True) and sent[-2] == (1, True), (where, sent)
        if not ext_params["local_no_context_takeover"]:
            assert sent[-1] == (2, True) and sent[1] == (2, True), (where, sent)

        # Messages the server saw: text, binary, empty text, empty binary, 2 requests, report.
        kinds = [type(m).__name__ for m in session.messages()]
        assert kinds == ["TextMessage", "BinaryMessage", "TextMessage", "BinaryMessage",
                         "TextMessage", "TextMessage", "TextMessage"], (where, kinds)
        assert isinstance(session.messages()[1], BinaryMessage) and len(session.messages()[1].data) == 1 << 20
        assert Pong(b"wsfast ping") in session.events, where

        # The page closed with 1000 "done"; the server echoed it and closed TCP: clean.
        assert session.first(CloseReceived) == CloseReceived(1000, "done"), where
        assert session.conn.close_code_sent == 1000, where
        closed = session.first(TransportClosed)
        assert closed is not None and closed.clean, (where, session.events[-3:])
        assert not session.timed_out, where
