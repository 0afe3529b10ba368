"""wsfast.asyncio and wsfast.uvicorn against real peers: the websockets library, Node ``ws``
and headless Chromium as clients of both servers; the asyncio client against a websockets
server. Servers run on their own loop in a thread; every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
from websockets.exceptions import ConnectionClosed as WebsocketsClosed
from websockets.sync.client import connect as ws_connect

from wsfast.asyncio import connect, serve_handler
from wsfast.handler import Handler, WebSocket

from .peers import (
    HERE,
    MAX_SIZE,
    SIZES,
    Chromium,
    PageServer,
    WebsocketsServer,
    binary_payload,
    run_node_client,
    sha256,
    text_payload,
)
from .test_node_ws import FRAGMENTED, NODE_MESSAGES

uvicorn = pytest.importorskip("uvicorn")
from wsfast.uvicorn import WSFastProtocol  # noqa: E402


class PageHandler(Handler):
    """Echo, plus the Chromium page's requests (``GIMME kind size``, ``RESULT {json}``)."""

    reports: List[Dict[str, Any]] = []

    def on_open(self, ws: WebSocket) -> None:
        ws.ping(b"wsfast ping")  # browsers answer pings themselves

    def on_text(self, ws: WebSocket, data: str) -> None:
        if data.startswith("GIMME "):
            _, kind, size = data.split()
            ws.send(text_payload(int(size), seed=7) if kind == "text" else binary_payload(int(size), seed=7))
        elif data.startswith("RESULT "):
            self.reports.append(json.loads(data[len("RESULT "):]))
        elif data.startswith("__close__ "):
            _, code, reason = data.split(" ", 2)
            ws.close(int(code), reason)
        else:
            ws.send_text(data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        ws.send_binary(data)


async def page_app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    """The same behaviour as ``PageHandler``, as an ASGI app for uvicorn."""
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        data = event.get("text")
        if data is None:
            await send({"type": "websocket.send", "bytes": event["bytes"]})
        elif data.startswith("GIMME "):
            _, kind, size = data.split()
            if kind == "text":
                await send({"type": "websocket.send", "text": text_payload(int(size), seed=7)})
            else:
                await send({"type": "websocket.send", "bytes": binary_payload(int(size), seed=7)})
        elif data.startswith("RESULT "):
            PageHandler.reports.append(json.loads(data[len("RESULT "):]))
        elif data.startswith("__close__ "):
            _, code, reason = data.split(" ", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            return
        else:
            await send({"type": "websocket.send", "text": data})


class AsyncioServer:
    """``serve_handler(PageHandler)`` on a loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> AsyncioServer:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(serve_handler(PageHandler, max_size=MAX_SIZE), self.loop)
        self.server = fut.result(10)
        self.url = self.server.url.rstrip("/")
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(timeout=5), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class UvicornServer:
    def __init__(self) -> None:
        cfg = uvicorn.Config(page_app, host="127.0.0.1", port=0, ws=WSFastProtocol, lifespan="off",
                             log_level="warning", ws_max_size=MAX_SIZE)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UvicornServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(15)


SERVERS = {"asyncio": AsyncioServer, "uvicorn": UvicornServer}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    PageHandler.reports = []
    with SERVERS[request.param]() as s:
        yield s


def test_websockets_client(server: Any) -> None:
    with ws_connect(server.url + "/x", max_size=MAX_SIZE, open_timeout=5, close_timeout=5) as ws:
        assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
        for size in SIZES:
            for message in (text_payload(size), binary_payload(size)):
                ws.send(message)
                assert ws.recv(timeout=10) == message
        ws.send(["frag", "mented"])
        assert ws.recv(timeout=10) == "fragmented"
        ws.send("__close__ 4003 server bye")
        with pytest.raises(WebsocketsClosed):
            ws.recv(timeout=10)
        assert ws.protocol.close_rcvd is not None
        assert (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason) == (4003, "server bye")


def test_node_ws_client(node: str, server: Any) -> None:
    result = run_node_client(node, {
        "url": server.url + "/echo",
        "perMessageDeflate": {},
        "messages": NODE_MESSAGES,
        "close": {"by": "client", "code": 4001, "reason": "node bye"},
    })
    assert result["error"] is None, result
    assert result["mismatches"] == [], result["mismatches"]
    assert len(result["sent"]) == len(NODE_MESSAGES)
    assert result["pongs"] == FRAGMENTED
    assert "permessage-deflate" in (result["extensions"] or "")
    assert result["close"]["code"] == 4001


def test_node_ws_client_server_closes(node: str, server: Any) -> None:
    result = run_node_client(node, {
        "url": server.url,
        "perMessageDeflate": {"threshold": 0},
        "messages": [{"binary": False, "size": 100}],
        "close": {"by": "server", "code": 4002, "reason": "wsfast bye"},
    })
    assert result["error"] is None, result
    assert result["close"] == {"code": 4002, "reason": "wsfast bye"}


def test_chromium_client(chromium: str, server: Any, tmp_path: Any) -> None:
    page = (HERE / "chromium_page.html").read_bytes()
    port = server.url.rsplit(":", 1)[1]
    with PageServer({"/": page}) as http:
        url = f"http://127.0.0.1:{http.port}/?ports={port}"
        profile = tmp_path / "profile"
        profile.mkdir()
        with Chromium(chromium, url, profile) as browser:
            deadline = time.monotonic() + 25
            while not PageHandler.reports and time.monotonic() < deadline:
                time.sleep(0.05)
            assert PageHandler.reports, f"no report from the page\n{browser.log()}"
    report = PageHandler.reports[0]
    assert "error" not in report, report
    assert report["extensions"].startswith("permessage-deflate"), report["extensions"]
    failed = [c for c in report["checks"] if not c["ok"]]
    assert len(report["checks"]) == 4 and not failed, report["checks"]
    assert report["digests"] == {
        "text": sha256(text_payload(1 << 20, seed=7)),
        "binary": sha256(binary_payload(1 << 20, seed=7)),
    }


def test_asyncio_client_to_websockets_server() -> None:
    async def main(url: str) -> Optional[int]:
        async with connect(url, max_size=MAX_SIZE, ping_interval=None) as ws:
            assert ws.ws.extensions == ("permessage-deflate",)
            for size in SIZES:
                for message in (text_payload(size), binary_payload(size)):
                    await ws.send(message)
                    assert await ws.recv() == message
            await ws.send(["a", "b", "c"])
            assert await ws.recv() == "abc"
            await ws.ping()  # websockets answers
        return ws.close_code

    with WebsocketsServer() as peer:
        code = asyncio.run(asyncio.wait_for(main(f"ws://127.0.0.1:{peer.port}/"), 25))
        record = peer.record(0)
    assert code == 1000
    assert record["error"] is None
    assert record["close_rcvd"] is not None and record["close_rcvd"].code == 1000
    assert "permessage-deflate" in (record["offer"] or "")
    assert len(record["messages"]) == 2 * len(SIZES) + 1
