"""wsfast.uvicorn:WSFastProtocol under a real uvicorn.Server (in a thread, port 0), serving a
real Starlette app and a real FastAPI app; clients are wsfast.asyncio and websockets."""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

uvicorn = pytest.importorskip("uvicorn")
starlette = pytest.importorskip("starlette")
fastapi = pytest.importorskip("fastapi")

from fastapi import FastAPI, WebSocketException  # noqa: E402
from fastapi import WebSocket as FastWebSocket  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket, WebSocketDisconnect  # noqa: E402

from wsfast.asyncio import connect  # noqa: E402
from wsfast.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus  # noqa: E402
from wsfast.uvicorn import WSFastProtocol, WSFastWebSocketProtocol  # noqa: E402

pytestmark = [pytest.mark.timeout(60)]

#: What the apps saw, for the tests to check (disconnect codes, scopes).
SEEN: Dict[str, List[Any]] = {}


def seen(key: str) -> List[Any]:
    return SEEN.setdefault(key, [])


# ------------------------------------------------------------------------------ Starlette app


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                seen("echo-disconnect").append((message.get("code"), message.get("reason", "")))
                return
            if message.get("text") is not None:
                await ws.send_text(message["text"])
            else:
                await ws.send_bytes(message["bytes"])
    except WebSocketDisconnect:  # pragma: no cover - receive() returned the disconnect above
        pass


async def subprotocol(ws: WebSocket) -> None:
    offered = ws.scope["subprotocols"]
    await ws.accept(subprotocol="b.v2" if "b.v2" in offered else None, headers=[(b"x-app", b"starlette")])
    await ws.send_text(json.dumps(offered))
    await ws.close()


async def scope(ws: WebSocket) -> None:
    await ws.accept()
    s = ws.scope
    await ws.send_text(
        json.dumps(
            {
                "type": s["type"],
                "asgi": s["asgi"],
                "http_version": s["http_version"],
                "scheme": s["scheme"],
                "server": list(s["server"]),
                "client": list(s["client"]),
                "root_path": s["root_path"],
                "path": s["path"],
                "raw_path": s["raw_path"].decode("latin-1"),
                "query_string": s["query_string"].decode("latin-1"),
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in s["headers"]],
                "subprotocols": s["subprotocols"],
                "state": sorted(s.get("state", {})),
                "extensions": sorted(s.get("extensions", {})),
            }
        )
    )
    await ws.close()


async def deny(ws: WebSocket) -> None:
    await ws.send_denial_response(Response(b"no entry\n", status_code=418, headers={"x-why": "teapot"}))


async def refuse(ws: WebSocket) -> None:
    await ws.close(code=1008)  # before accept: HTTP 403


async def server_closes(ws: WebSocket) -> None:
    await ws.accept()
    await ws.receive_text()
    await ws.close(code=4001, reason="app says bye")


async def wait_forever(ws: WebSocket) -> None:
    await ws.accept()
    message = await ws.receive()
    seen("wait-disconnect").append(message.get("code"))


STARLETTE = Starlette(
    routes=[
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/subprotocol", subprotocol),
        WebSocketRoute("/scope/{name}", scope),
        WebSocketRoute("/deny", deny),
        WebSocketRoute("/refuse", refuse),
        WebSocketRoute("/server-closes", server_closes),
        WebSocketRoute("/wait", wait_forever),
    ]
)

# ------------------------------------------------------------------------------ FastAPI app

FAST = FastAPI()


@FAST.websocket("/ws/{room}")
async def fast_echo(websocket: FastWebSocket, room: str, token: str = "") -> None:
    if token != "ok":
        raise WebSocketException(code=1008, reason="bad token")  # before accept: 403
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"{room}:{text}")
    except fastapi.WebSocketDisconnect as exc:
        seen("fast-disconnect").append((exc.code, exc.reason))


# ------------------------------------------------------------------------------ server fixture


class Running:
    def __init__(self, app: Any, **config: Any) -> None:
        cfg = uvicorn.Config(
            app, host="127.0.0.1", port=0, ws=WSFastProtocol, lifespan="off", log_level="warning", **config
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            self.thread.join(0.02)
        assert self.server.started, "uvicorn did not start"
        sock = self.server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        assert not self.thread.is_alive()

    def __exit__(self, *exc: Any) -> None:
        if self.thread.is_alive():
            self.stop()


@pytest.fixture
def star() -> Iterator[Running]:
    SEEN.clear()
    with Running(STARLETTE) as r:
        yield r


def run(coro: Any, timeout: float = 30) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ------------------------------------------------------------------------------ tests


def test_alias() -> None:
    assert WSFastWebSocketProtocol is WSFastProtocol


def test_starlette_echo(star: Running) -> None:
    async def main() -> None:
        async with connect(star.url + "/echo", max_size=8 << 20) as ws:
            for message in ["", "é" * 5000, b"", b"\x00" * 70000, bytes(range(256)) * 4096]:
                await ws.send(message)
                assert await ws.recv() == message
            for i in range(500):
                await ws.send(str(i))
            for i in range(500):
                assert await ws.recv() == str(i)

    run(main())


def test_starlette_subprotocol_and_headers(star: Running) -> None:
    async def main() -> None:
        async with connect(star.url + "/subprotocol", subprotocols=["a.v1", "b.v2"]) as ws:
            assert ws.subprotocol == "b.v2"
            assert json.loads(await ws.recv()) == ["a.v1", "b.v2"]
            assert ws.response is not None
            headers = {k.lower(): v for k, v in ws.response.headers}
            assert headers["x-app"] == "starlette"
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()

    run(main())


def test_scope_fields(star: Running) -> None:
    async def main() -> Dict[str, Any]:
        async with connect(star.url + "/scope/caf%C3%A9?x=1&y=%20", subprotocols=["p1", "p2"],
                           headers=[("X-Custom", "Value")]) as ws:
            return dict(json.loads(await ws.recv()))

    got = run(main())
    assert got["type"] == "websocket"
    assert got["asgi"]["spec_version"] == "2.4" and got["asgi"]["version"] == "3.0"
    assert got["http_version"] == "1.1"
    assert got["scheme"] == "ws"
    assert got["server"] == ["127.0.0.1", star.port]
    assert got["client"][0] == "127.0.0.1" and isinstance(got["client"][1], int)
    assert got["root_path"] == ""
    assert got["path"] == "/scope/café"
    assert got["raw_path"] == "/scope/caf%C3%A9"
    assert got["query_string"] == "x=1&y=%20"
    assert ["x-custom", "Value"] in got["headers"]
    assert all(k == k.lower() for k, _ in got["headers"])
    assert got["subprotocols"] == ["p1", "p2"]
    assert got["extensions"] == ["websocket.http.response"]


def test_denial_response_exact(star: Running) -> None:
    async def main() -> None:
        with pytest.raises(InvalidStatus) as info:
            await connect(star.url + "/deny")
        assert info.value.status == 418
        assert info.value.body == b"no entry\n"
        assert info.value.header("x-why") == "teapot"
        assert info.value.header("content-length") == "9"

    run(main())


def test_close_before_accept_is_403(star: Running) -> None:
    async def main() -> None:
        with pytest.raises(InvalidStatus) as info:
            await connect(star.url + "/refuse")
        assert info.value.status == 403

    run(main())


def test_client_closes_with_code(star: Running) -> None:
    async def main() -> None:
        ws = await connect(star.url + "/echo")
        await ws.send("x")
        assert await ws.recv() == "x"
        await ws.close(4002, "client says bye")
        assert ws.close_code == 4002

    run(main())
    for _ in range(100):
        if SEEN.get("echo-disconnect"):
            break
        threading.Event().wait(0.02)
    assert SEEN["echo-disconnect"] == [(4002, "client says bye")]


def test_server_closes_with_code(star: Running) -> None:
    async def main() -> None:
        ws = await connect(star.url + "/server-closes")
        await ws.send("go")
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert (info.value.code, info.value.reason) == (4001, "app says bye")

    run(main())


def test_message_too_big_1009() -> None:
    with Running(STARLETTE, ws_max_size=1000) as r:

        async def main() -> None:
            ws = await connect(r.url + "/echo", compression=None)
            await ws.send(b"x" * 1000)
            assert await ws.recv() == b"x" * 1000
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1009

        run(main())


def test_shutdown_closes_with_1012() -> None:
    SEEN.clear()
    r = Running(STARLETTE)
    with r:

        async def main() -> None:
            ws = await connect(r.url + "/wait")
            stopper = threading.Thread(target=r.stop)
            stopper.start()
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1012
            await ws.wait_closed()
            await asyncio.get_running_loop().run_in_executor(None, stopper.join, 20)

        run(main())
    assert not r.thread.is_alive()


def test_ping_timeout_fails_with_1011() -> None:
    SEEN.clear()
    with Running(STARLETTE, ws_ping_interval=0.1, ws_ping_timeout=0.2) as r:

        async def main() -> None:
            ws = await connect(r.url + "/wait", ping_interval=None)
            ws.protocol.pause_reading()  # answer no pings
            for _ in range(250):  # until the server gave up on us (bounded: 5 s)
                if SEEN.get("wait-disconnect"):
                    break
                await asyncio.sleep(0.02)
            ws.protocol.resume_reading()  # the server's close frame (1011) waits in our buffer
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1011

        run(main())
        for _ in range(100):
            if SEEN.get("wait-disconnect"):
                break
            threading.Event().wait(0.02)
        assert SEEN["wait-disconnect"] == [1006]  # no close frame came from the client


def test_keepalive_pings_are_answered() -> None:
    with Running(STARLETTE, ws_ping_interval=0.05, ws_ping_timeout=1) as r:

        async def main() -> None:
            async with connect(r.url + "/echo", ping_interval=None) as ws:
                await asyncio.sleep(0.3)
                await ws.send("alive")
                assert await ws.recv() == "alive"

        run(main())


@pytest.mark.parametrize("deflate", [True, False])
def test_compression_negotiated(deflate: bool) -> None:
    with Running(STARLETTE, ws_per_message_deflate=deflate) as r:

        async def main() -> None:
            async with connect(r.url + "/echo") as ws:
                assert ws.response is not None
                headers = {k.lower(): v for k, v in ws.response.headers}
                ext = headers.get("sec-websocket-extensions")
                if deflate:
                    assert ext is not None and ext.startswith("permessage-deflate")
                    assert "server_max_window_bits=12" in ext  # the memory-saving default
                    assert ws.ws.extensions == ("permessage-deflate",)
                else:
                    assert ext is None and ws.ws.extensions == ()
                text = "compress me " * 1000
                await ws.send(text)
                assert await ws.recv() == text

        run(main())


def test_fastapi_echo_and_403() -> None:
    SEEN.clear()
    with Running(FAST) as r:

        async def main() -> None:
            with pytest.raises(InvalidStatus) as info:
                await connect(r.url + "/ws/lobby?token=bad")
            assert info.value.status == 403
            ws = await connect(r.url + "/ws/lobby?token=ok")
            for word in ("hello", "wörld"):
                await ws.send(word)
                assert await ws.recv() == f"lobby:{word}"
            await ws.close(1000, "bye")
            assert ws.close_code == 1000

        run(main())
        for _ in range(100):
            if SEEN.get("fast-disconnect"):
                break
            threading.Event().wait(0.02)
        assert SEEN["fast-disconnect"] == [(1000, "bye")]


def test_websockets_client_against_fastapi() -> None:
    from websockets.sync.client import connect as ws_connect

    with Running(FAST) as r:
        with ws_connect(r.url + "/ws/r1?token=ok", open_timeout=5, close_timeout=5) as ws:
            ws.send("ping")
            assert ws.recv(timeout=5) == "r1:ping"


def test_message_then_violation_in_one_packet_echo_comes_first(star: Running) -> None:
    """The app answers a message before a protocol violation behind it in the same read
    takes effect (Autobahn 3.2 strict): echo first, then the 1002 close."""

    async def main() -> None:
        ws = await connect(star.url + "/echo", compression=None)
        valid = b"\x81\x82\x00\x00\x00\x00hi"  # masked (zero key) text "hi"
        violation = b"\xa1\x80\x00\x00\x00\x00"  # RSV2 set: no extension claims it
        assert ws.protocol.transport is not None
        ws.protocol.transport.write(valid + violation)
        assert await ws.recv() == "hi"
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.code == 1002

    run(main())


# ------------------------------------------------------------------------------ streamed denial

#: (loop, event) of each gate a streaming app waits on before its next body message.
GATES: queue.Queue[Any] = queue.Queue()
UPGRADE = (
    b"GET /deny HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def streamed_denial(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI app: response.start, then each body chunk only once the test opens a gate.
    The path picks the case: /chunks/a,b,c (close-delimited), /length/N/a,b (Content-Length
    N), /fail/a (raises after chunk a), /whole (start and body back to back)."""
    assert (await receive())["type"] == "websocket.connect"
    kind, _, rest = scope["path"].strip("/").partition("/")
    headers = [(b"x-why", b"streamed"), (b"Transfer-Encoding", b"chunked"), (b"connection", b"keep-alive")]
    if kind == "length":
        n, _, rest = rest.partition("/")
        headers.append((b"content-length", n.encode()))
    await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
    try:
        if kind == "whole":
            await send({"type": "websocket.http.response.body", "body": b"hardbody"})
            return
        chunks = rest.split(",")
        for i, chunk in enumerate(chunks):
            gate = asyncio.Event()
            GATES.put((asyncio.get_running_loop(), gate))
            await gate.wait()
            last = i == len(chunks) - 1
            if kind == "fail" and last:
                raise ValueError("the app fails mid-body")
            await send({"type": "websocket.http.response.body", "body": chunk.encode(), "more_body": not last})
    except Exception as exc:
        seen("denial-error").append(str(exc))
        raise
    seen("denial-after").append(await receive())


def _open_gate() -> None:
    loop, gate = GATES.get(timeout=10)
    loop.call_soon_threadsafe(gate.set)


def _raw_request(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(UPGRADE.replace(b"/deny", path.encode()))
    return sock


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        assert more, f"EOF after {data!r}"
        data += more
    return data


def _assert_eof(sock: socket.socket) -> None:
    assert sock.recv(100) == b""


@pytest.fixture
def streaming() -> Iterator[Running]:
    SEEN.clear()
    while not GATES.empty():
        GATES.get_nowait()
    with Running(streamed_denial) as r:
        yield r


def test_denial_head_is_written_before_the_body(streaming: Running) -> None:
    """The head goes out while the app still waits to send any body; the body is then
    delimited by the close (no length given): each chunk as it is sent, then EOF."""
    head = b"HTTP/1.1 403 Forbidden\r\nx-why: streamed\r\nConnection: close\r\n\r\n"
    with _raw_request(streaming.port, "/chunks/first,,second-chunk,third") as sock:
        # The app is blocked on its first gate: no body exists yet, and the head is here.
        assert _recv_exactly(sock, len(head)) == head
        for chunk in [b"first", b"", b"second-chunk", b"third"]:
            _open_gate()
            assert _recv_exactly(sock, len(chunk)) == chunk
        _assert_eof(sock)
    assert SEEN["denial-after"] == [{"type": "websocket.disconnect", "code": 1006}]


def test_denial_streamed_with_content_length(streaming: Running) -> None:
    head = b"HTTP/1.1 403 Forbidden\r\nx-why: streamed\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
    with _raw_request(streaming.port, "/length/9/abcd,efghi") as sock:
        assert _recv_exactly(sock, len(head)) == head
        _open_gate()
        assert _recv_exactly(sock, 4) == b"abcd"
        _open_gate()
        assert _recv_exactly(sock, 5) == b"efghi"
        _assert_eof(sock)


def test_denial_body_longer_than_content_length_is_cut(streaming: Running) -> None:
    head = b"HTTP/1.1 403 Forbidden\r\nx-why: streamed\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
    with _raw_request(streaming.port, "/length/3/abcdef") as sock:
        assert _recv_exactly(sock, len(head)) == head
        _open_gate()
        assert _recv_exactly(sock, 3) == b"abc"
        _assert_eof(sock)  # complete as declared: a clean close, not a reset
    for _ in range(500):
        if "denial-error" in SEEN:
            break
        time.sleep(0.01)
    assert SEEN["denial-error"] == ["Response content longer than Content-Length."]


def test_denial_app_failing_mid_body_resets(streaming: Running) -> None:
    """A close-delimited body cut short by a failing app must not look complete: RST."""
    head = b"HTTP/1.1 403 Forbidden\r\nx-why: streamed\r\nConnection: close\r\n\r\n"
    with _raw_request(streaming.port, "/fail/partial,never") as sock:
        assert _recv_exactly(sock, len(head)) == head
        _open_gate()
        assert _recv_exactly(sock, 7) == b"partial"
        _open_gate()
        with pytest.raises(ConnectionResetError):
            sock.recv(100)


def test_denial_body_in_the_same_step_gets_a_length(streaming: Running) -> None:
    """start and the last body back to back (Starlette's Response): one response, with the
    engine's Content-Length and default Content-Type."""
    expected = (
        b"HTTP/1.1 403 Forbidden\r\nx-why: streamed\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 8\r\nConnection: close\r\n\r\nhardbody"
    )
    with _raw_request(streaming.port, "/whole") as sock:
        assert _recv_exactly(sock, len(expected)) == expected
        _assert_eof(sock)


def test_messages_then_violation_in_one_packet_all_echoed_first(star: Running) -> None:
    """Every message of a read is queued at once; the failure behind them is held until
    the app has taken them all: three echoes, then the 1002 close."""

    async def main() -> None:
        ws = await connect(star.url + "/echo", compression=None)
        valid = b"".join(b"\x81\x82\x00\x00\x00\x00" + b"m%d" % i for i in range(3))
        violation = b"\xa1\x80\x00\x00\x00\x00"  # RSV2 set: no extension claims it
        assert ws.protocol.transport is not None
        ws.protocol.transport.write(valid + violation)
        assert [await ws.recv() for _ in range(3)] == ["m0", "m1", "m2"]
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.code == 1002

    run(main())


def test_peer_close_after_messages_in_one_packet_comes_after_them(star: Running) -> None:
    """The peer's close behind messages of the same read takes effect after the app has
    answered them: four echoes, then the close reply, on the wire in that order."""
    with _raw_request(star.port, "/echo") as sock:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101 ")
        frames = b"".join(b"\x82\x81\x00\x00\x00\x00" + bytes([i]) for i in range(4))
        close = b"\x88\x85\x00\x00\x00\x00\x0f\xa1bye"  # 4001 "bye"
        sock.sendall(frames + close)
        expected = b"".join(b"\x82\x01" + bytes([i]) for i in range(4)) + b"\x88\x02\x0f\xa1"  # code only
        assert _recv_exactly(sock, len(expected)) == expected
        _assert_eof(sock)
    for _ in range(500):
        if SEEN.get("echo-disconnect"):
            break
        time.sleep(0.01)
    assert SEEN["echo-disconnect"] == [(4001, "bye")]
