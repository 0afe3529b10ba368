"""wsfast.sync (the blocking client and the thread-per-connection server) against real peers:
``websockets`` (its sync API) both ways, Node ``ws`` both ways, headless Chromium against
the server; with and without permessage-deflate, and with TLS (trustme certificates) where
the peer's test script allows it (websockets both ways)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest
from websockets.exceptions import ConnectionClosed as WebsocketsClosed
from websockets.sync.client import connect as ws_connect

from wsfast.exceptions import ConnectionClosedError
from wsfast.sync import ServerConnection, connect, serve

from .peers import (
    HERE,
    MAX_SIZE,
    SIZES,
    WS_OPTIONS,
    Chromium,
    NodeServer,
    PageServer,
    WebsocketsServer,
    binary_payload,
    run_node_client,
    sha256,
    split,
    text_payload,
)

COMPRESSION = [pytest.param("deflate", id="deflate"), pytest.param(None, id="no-compression")]


@pytest.fixture(scope="module")
def certs() -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def _messages() -> List[Any]:
    out: List[Any] = []
    for size in SIZES:
        out.append(text_payload(size))
        out.append(binary_payload(size))
    return out


def _exchange(ws: Any) -> None:
    """Every size class text and binary, then fragmented sends; echoes compared exactly."""
    for m in _messages():
        ws.send(m)
        got = ws.recv(20)
        assert type(got) is type(m) and sha256(got) == sha256(m), (type(m), len(m))
    text = text_payload(100_000, seed=3)
    ws.send(split(text, 5))
    assert ws.recv(20) == text
    data = binary_payload(100_000, seed=3)
    ws.send(split(data, 4))
    assert ws.recv(20) == data


# ------------------------------------------------------------------------------ sync client


@pytest.mark.parametrize("compression", COMPRESSION)
def test_sync_client_to_websockets_server(compression: Optional[str]) -> None:
    with WebsocketsServer(compression=compression) as peer:
        uri = f"ws://127.0.0.1:{peer.port}/"
        with connect(uri, compression=compression, max_size=MAX_SIZE, ping_interval=None) as ws:
            assert ws.extensions == (("permessage-deflate",) if compression else ())
            _exchange(ws)
            assert ws.ping().wait(10) > 0
            ws.send("__close__ 4000 server says bye")
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(10)
            assert info.value.code == 4000 and info.value.reason == "server says bye"
        record = peer.record(0)
        assert record["error"] is None


def test_sync_client_to_websockets_server_tls(certs: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = certs
    with WebsocketsServer(ssl=server_ctx) as peer:
        with connect(f"wss://localhost:{peer.port}/", ssl=client_ctx, max_size=MAX_SIZE, ping_interval=None) as ws:
            _exchange(ws)
        record = peer.record(0)
        assert record["error"] is None and record["close_rcvd"].code == 1000


NODE_DEFLATE = [pytest.param({"threshold": 0}, id="deflate"), pytest.param(False, id="no-compression")]


@pytest.mark.parametrize("deflate", NODE_DEFLATE)
def test_sync_client_to_node_ws_server(node: str, deflate: Any) -> None:
    with NodeServer(node, {"perMessageDeflate": deflate, "echoFragments": 3}) as peer:
        compression = "deflate" if deflate else None
        uri = f"ws://127.0.0.1:{peer.port}/"
        with connect(uri, compression=compression, max_size=MAX_SIZE, ping_interval=None) as ws:
            assert ws.extensions == (("permessage-deflate",) if deflate else ())
            _exchange(ws)
            assert ws.ping().wait(10) > 0
            ws.close(4001, "client says bye")
        close = peer.expect("close")
        assert close["code"] == 4001 and close["reason"] == "client says bye"


# ------------------------------------------------------------------------------ sync server


class EchoServer:
    """A wsfast.sync echo server that also obeys ``__close__ CODE REASON`` and the Chromium
    page's ``GIMME kind size`` / ``RESULT json`` messages."""

    def __init__(self, **kwargs: Any) -> None:
        self.reports: List[Dict[str, Any]] = []
        self.errors: List[BaseException] = []
        self.closes: List[Tuple[Optional[int], str]] = []
        self.requests: List[Any] = []
        kwargs.setdefault("max_size", MAX_SIZE)
        self.server = serve(self.handler, "127.0.0.1", 0, **kwargs)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port

    def handler(self, ws: ServerConnection) -> None:
        self.requests.append(ws.request)
        try:
            for m in ws:
                if isinstance(m, str) and m.startswith("__close__ "):
                    _, code, reason = m.split(" ", 2)
                    ws.close(int(code), reason)
                    break
                if isinstance(m, str) and m.startswith("GIMME "):
                    _, kind, size = m.split()
                    ws.send(text_payload(int(size), seed=7) if kind == "text" else binary_payload(int(size), seed=7))
                elif isinstance(m, str) and m.startswith("RESULT "):
                    self.reports.append(json.loads(m[len("RESULT "):]))
                else:
                    ws.send(m)
        except ConnectionClosedError:
            pass
        except Exception as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            self.closes.append((ws.close_code, ws.close_reason))

    def wait_closes(self, n: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.closes) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.closes) >= n

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown(5)
        self.thread.join(5)


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_websockets_client_to_sync_server(compression: Optional[str], secure: bool, certs: Any) -> None:
    server_ctx, client_ctx = certs
    kwargs: Dict[str, Any] = {"compression": compression, "ping_interval": 0.2}
    if secure:
        kwargs["ssl"] = server_ctx
    with EchoServer(**kwargs) as srv:
        scheme, host = ("wss", "localhost") if secure else ("ws", "127.0.0.1")
        extra = {"ssl": client_ctx} if secure else {}
        with ws_connect(f"{scheme}://{host}:{srv.port}/path", compression=compression, **WS_OPTIONS, **extra) as ws:
            for m in _messages():
                ws.send(m)
                got = ws.recv(20)
                assert type(got) is type(m) and sha256(got) == sha256(m)
            ws.send(split(text_payload(50_000), 3))
            assert ws.recv(20) == text_payload(50_000)
            ws.send("__close__ 4002 done here")
            with pytest.raises(WebsocketsClosed):
                ws.recv(10)
            assert ws.close_code == 4002 and ws.close_reason == "done here"
        srv.wait_closes(1)
        assert not srv.errors
        offered = srv.requests[0].header("Sec-WebSocket-Extensions")
        assert (offered is not None) == (compression is not None)


@pytest.mark.parametrize("deflate", NODE_DEFLATE)
@pytest.mark.parametrize("closer", ["client", "server"])
def test_node_ws_client_to_sync_server(node: str, deflate: Any, closer: str) -> None:
    with EchoServer(compression="deflate" if deflate else None, ping_interval=0.2) as srv:
        messages = [{"binary": b, "size": s} for s in SIZES for b in (False, True)]
        messages += [{"binary": False, "size": 100_000, "fragments": 4, "byteSplit": True},
                     {"binary": True, "size": 70_000, "fragments": 3}]
        result = run_node_client(node, {
            "url": f"ws://127.0.0.1:{srv.port}/",
            "perMessageDeflate": deflate,
            "messages": messages,
            "close": {"by": closer, "code": 4003, "reason": f"{closer} closes"},
        })
        assert result["error"] is None, result
        assert result["mismatches"] == [], result["mismatches"]
        # The close frame the client saw: the server's own, or its echo of the client's
        # (the engine echoes the code only).
        assert result["close"]["code"] == 4003
        assert result["close"]["reason"] == ("server closes" if closer == "server" else "")
        assert (result["response"] is not None) == bool(deflate)
        srv.wait_closes(1)
        assert not srv.errors
        if closer == "client":
            assert srv.closes[0] == (4003, "client closes")


def test_chromium_to_sync_server(chromium: str, tmp_path: Any) -> None:
    page = (HERE / "chromium_page.html").read_bytes()
    with EchoServer(ping_interval=0.2) as a, EchoServer(compression=None) as b:
        with PageServer({"/": page}) as http:
            url = f"http://127.0.0.1:{http.port}/?ports={a.port},{b.port}"
            profile = tmp_path / "profile"
            profile.mkdir()
            with Chromium(chromium, url, profile) as browser:
                deadline = time.monotonic() + 25
                while (len(a.closes) < 1 or len(b.closes) < 1) and time.monotonic() < deadline:
                    time.sleep(0.05)
                log = browser.log()
    for srv, response in ((a, "permessage-deflate"), (b, "")):
        assert srv.reports, f"no report from Chromium; its output:\n{log}"
        report = srv.reports[0]
        assert "error" not in report, report
        assert report["extensions"].startswith(response)
        assert len(report["checks"]) == 4 and all(c["ok"] for c in report["checks"]), report["checks"]
        assert report["digests"] == {
            "text": sha256(text_payload(1 << 20, seed=7)),
            "binary": sha256(binary_payload(1 << 20, seed=7)),
        }
        assert srv.closes[0] == (1000, "done") and not srv.errors
