"""wsfast.asyncio over loopback: both faces, on asyncio's default loop and on uvloop.

Every test runs its coroutine under ``run()``, which bounds it (``asyncio.wait_for``) and
closes the loop; nothing here measures time. Behaviour is asserted: exact echoes, close codes
and reasons, exception types, whether reading or writing is paused.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from typing import Any, Awaitable, Dict, List, Optional, Tuple

import pytest

from wsfast import Request
from wsfast._options import ClientOptions, ServerOptions
from wsfast.asyncio import Connection, connect, open_handler, serve, serve_handler
from wsfast.asyncio._mode import MODE, UVLOOP
from wsfast.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectRefused,
    InvalidStatus,
    OpenTimeout,
    TLSError,
)
from wsfast.handler import Accept, Handler, Reject, WebSocket

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_thread_leak")]

KiB = 1024
MiB = 1024 * KiB
BIG = 17 * MiB  # max_size for the size classes up to 16 MiB

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a test dependency
    uvloop = None  # type: ignore[assignment]

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(uvloop is None, reason="uvloop not installed"))]


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(coro: Awaitable[Any], loop_kind: str = "asyncio", timeout: float = 60.0) -> Any:
    """Run ``coro`` on a fresh loop of ``loop_kind``, bounded by ``timeout`` seconds."""
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def echo(ws: Connection) -> None:
    async for message in ws:
        await ws.send(message)


def payload(size: int, text: bool) -> Any:
    if text:
        base = "héllo wörld €\n"
        out = (base * (size // len(base.encode()) + 1)).encode()[:size]
        return out.decode("utf-8", "ignore") + "x" * (size - len(out.decode("utf-8", "ignore").encode()))
    return bytes(i * 31 % 251 for i in range(min(size, 4096))) * (size // 4096) + bytes(size % 4096)


# ------------------------------------------------------------------------------------ echo

SIZES = [0, 1, 125, 126, 65535, 65536, 256 * KiB + 1, 1 * MiB, 16 * MiB]


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_echo_size_classes(loop_kind: str, compression: Optional[str]) -> None:
    async def main() -> None:
        async with await serve(echo, compression=compression, max_size=BIG) as server:
            async with connect(server.url, compression=compression, max_size=BIG) as ws:
                assert ws.subprotocol is None
                for size in SIZES:
                    if compression and size > MiB:
                        continue  # 16 MiB through deflate is slow on the pure-Python build
                    for text in (False, True):
                        message = payload(size, text)
                        await ws.send(message)
                        got = await ws.recv()
                        assert type(got) is type(message)
                        assert got == message, (size, text)
                # A fragmented message comes back as one.
                await ws.send([b"ab", b"", b"cd"])
                assert await ws.recv() == b"abcd"
                await ws.send(["é", "t", "é"])
                assert await ws.recv() == "été"
            assert ws.close_code == 1000

    run(main(), loop_kind)


def test_many_small_messages_pipelined(loop_kind: str) -> None:
    """Thousands of small messages in flight at once: every one echoed, in order."""

    async def main() -> None:
        async with await serve(echo, compression=None) as server:
            async with connect(server.url, compression=None, max_queue=None) as ws:
                for i in range(5000):
                    await ws.send(b"%d" % i)
                for i in range(5000):
                    assert await ws.recv() == b"%d" % i

    run(main(), loop_kind)


def test_ping_latency(loop_kind: str) -> None:
    async def main() -> None:
        async with await serve(echo) as server:
            async with connect(server.url) as ws:
                assert ws.latency is None
                latency = await ws.ping()
                assert isinstance(latency, float) and latency > 0
                assert ws.latency is not None and ws.latency > 0
                latencies = await asyncio.gather(ws.ping(b"a"), ws.ping(b"b"), ws.ping())
                assert all(isinstance(x, float) and x > 0 for x in latencies)

    run(main(), loop_kind)


def test_subprotocol_and_headers(loop_kind: str) -> None:
    seen: Dict[str, Any] = {}

    def hook(conn: Connection, request: Request) -> Any:
        seen["path"] = request.path
        seen["agent"] = dict((k.lower(), v) for k, v in request.headers).get("x-agent")
        return Accept("chat.v2", [("X-Server", "wsfast-test")])

    async def app(ws: Connection) -> None:
        await ws.send(ws.subprotocol or "")

    async def main() -> None:
        async with await serve(app, process_request=hook, subprotocols=["chat.v1", "chat.v2"]) as server:
            url = server.url + "room?x=1"
            async with connect(url, subprotocols=["chat.v2", "chat.v1"], headers=[("X-Agent", "t")]) as ws:
                assert ws.subprotocol == "chat.v2"
                assert await ws.recv() == "chat.v2"
                assert ws.response is not None
                assert dict((k.lower(), v) for k, v in ws.response.headers)["x-server"] == "wsfast-test"
        assert seen == {"path": "/room", "agent": "t"}

    run(main(), loop_kind)


def test_reject_with_status_and_body(loop_kind: str) -> None:
    def hook(conn: Connection, request: Request) -> Any:
        return Reject(401, [("WWW-Authenticate", 'Basic realm="ws"')], b"who are you?\n")

    async def main() -> None:
        async with await serve(echo, process_request=hook) as server:
            with pytest.raises(InvalidStatus) as info:
                await connect(server.url)
            assert info.value.status == 401
            assert info.value.body == b"who are you?\n"
            assert info.value.header("www-authenticate") == 'Basic realm="ws"'

    run(main(), loop_kind)


# ------------------------------------------------------------------------------------ close codes


def test_client_closes_with_code_and_reason(loop_kind: str) -> None:
    got: asyncio.Future[Tuple[int, str, type]]

    async def app(ws: Connection) -> None:
        try:
            await ws.recv()
        except (ConnectionClosedOK, ConnectionClosedError) as exc:
            got.set_result((exc.code, exc.reason, type(exc)))

    async def main() -> None:
        nonlocal got
        got = asyncio.get_running_loop().create_future()
        async with await serve(app) as server:
            ws = await connect(server.url)
            await ws.close(4001, "client says bye")
            assert ws.close_code == 4001  # the server echoed our code
            assert await got == (4001, "client says bye", ConnectionClosedError)

    run(main(), loop_kind)


def test_server_closes_with_code_and_reason(loop_kind: str) -> None:
    async def app(ws: Connection) -> None:
        await ws.close(4002, "server says bye")

    async def main() -> None:
        async with await serve(app) as server:
            ws = await connect(server.url)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert (info.value.code, info.value.reason, info.value.sent_code) == (4002, "server says bye", 4002)
            await ws.wait_closed()
            assert ws.close_code == 4002 and ws.close_reason == "server says bye"

    run(main(), loop_kind)


def test_normal_close_ends_async_for(loop_kind: str) -> None:
    async def app(ws: Connection) -> None:
        for i in range(3):
            await ws.send(str(i))
        # returning closes with 1000

    async def main() -> None:
        async with await serve(app) as server:
            async with connect(server.url) as ws:
                assert [m async for m in ws] == ["0", "1", "2"]
                assert ws.close_code == 1000

    run(main(), loop_kind)


def test_app_exception_closes_with_1011(loop_kind: str) -> None:
    async def app(ws: Connection) -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        async with await serve(app) as server:
            ws = await connect(server.url)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1011

    run(main(), loop_kind)


def test_graceful_shutdown_1001(loop_kind: str) -> None:
    async def main() -> None:
        server = await serve(echo)
        clients = [await connect(server.url) for _ in range(3)]
        await server.close()
        assert not server.protocols
        for ws in clients:
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.recv()
            assert info.value.code == 1001
            assert ws.close_code == 1001
        with pytest.raises(ConnectRefused):
            await connect(server.url, open_timeout=5)

    run(main(), loop_kind)


def test_shutdown_cancels_app_tasks_that_linger(loop_kind: str) -> None:
    cancelled: List[bool] = []

    async def app(ws: Connection) -> None:
        try:
            await asyncio.sleep(3600)  # ignores the connection going away
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        server = await serve(app, close_timeout=0.5)
        ws = await connect(server.url)
        await server.close()
        assert cancelled == [True]
        assert not server.tasks
        await ws.wait_closed()
        assert ws.close_code == 1001

    run(main(), loop_kind)


# ------------------------------------------------------------------------------------ limits


def test_max_connections_503(loop_kind: str) -> None:
    async def main() -> None:
        async with await serve(echo, max_connections=2) as server:
            a = await connect(server.url)
            b = await connect(server.url)
            with pytest.raises(InvalidStatus) as info:
                await connect(server.url)
            assert info.value.status == 503
            assert info.value.header("retry-after") == "1"
            await a.close()
            c = await connect(server.url)  # a slot is free again
            await c.send("ok")
            assert await c.recv() == "ok"
            await b.close()
            await c.close()

    run(main(), loop_kind)


def test_message_too_big_1009(loop_kind: str) -> None:
    async def main() -> None:
        async with await serve(echo, max_size=1000) as server:
            ws = await connect(server.url, compression=None)
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1009

    run(main(), loop_kind)


def test_bounded_receive_queue_stops_reading(loop_kind: str) -> None:
    """A server floods; the client does not read. Its queue stays bounded and reading stops,
    so the flood backs up into the server, whose ``send()`` then waits; once the client
    reads, every message arrives, in order."""
    count, size = 40000, 4 * KiB
    server_blocked: asyncio.Future[None]
    sent: List[int] = []

    async def flood(ws: Connection) -> None:
        for i in range(count):
            ws.ws.send_binary(i.to_bytes(4, "big") + bytes(size - 4))
            sent.append(i)
            if ws.protocol.writing_paused and not server_blocked.done():
                server_blocked.set_result(None)
            await ws.drain()  # what send() does after writing: wait below the watermark
        await ws.recv()  # until the client closes

    async def main() -> None:
        nonlocal server_blocked
        server_blocked = asyncio.get_running_loop().create_future()
        async with await serve(flood, compression=None, write_limit=64 * KiB) as server:
            ws = await connect(server.url, compression=None, max_queue=8)
            await server_blocked  # the server's writes back up: the client stopped reading
            await asyncio.sleep(0.05)  # let anything in flight settle (not a timing assertion)
            assert ws.reading_paused
            per_read = 256 * KiB // size + 1
            assert len(ws._messages) <= 8 + per_read
            assert len(sent) < count  # the server is held up too
            for i in range(count):
                got = await ws.recv()
                assert isinstance(got, bytes)
                assert int.from_bytes(got[:4], "big") == i and len(got) == size
            assert not ws.reading_paused
            await ws.close()

    run(main(), loop_kind)


def test_send_waits_while_the_peer_does_not_read(loop_kind: str) -> None:
    """``await send()`` respects pause/resume: with the server not reading, the client's
    write buffer passes its watermark and send() waits until the server reads again."""
    started: asyncio.Future[Connection]

    async def app(ws: Connection) -> None:
        started.set_result(ws)
        ws.protocol.pause_reading()
        await ws.wait_closed()

    async def main() -> None:
        nonlocal started
        started = asyncio.get_running_loop().create_future()
        async with await serve(app, compression=None, max_size=BIG) as server:
            ws = await connect(server.url, compression=None, write_limit=16 * KiB)
            peer = await started
            chunk = bytes(256 * KiB)
            pending: Optional[asyncio.Task[None]] = None
            for _ in range(200):  # at most 50 MiB: the socket buffers fill well before
                pending = asyncio.ensure_future(ws.send(chunk))
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                if not pending.done():
                    break
                await pending
            assert pending is not None and not pending.done()
            assert ws.protocol.writing_paused
            peer.protocol.resume_reading()
            await pending  # completes once the server reads
            await ws.close()

    run(main(), loop_kind)


def test_concurrent_recv_and_cancelled_recv(loop_kind: str) -> None:
    async def main() -> None:
        async with await serve(echo) as server:
            async with connect(server.url) as ws:
                cancelled = asyncio.ensure_future(ws.recv())
                await asyncio.sleep(0)
                cancelled.cancel()
                a = asyncio.ensure_future(ws.recv())
                b = asyncio.ensure_future(ws.recv())
                await asyncio.sleep(0)
                await ws.send("one")
                await ws.send("two")
                assert sorted(await asyncio.gather(a, b)) == ["one", "two"]

    run(main(), loop_kind)


# ------------------------------------------------------------------------------------ timeouts


def test_open_timeout_on_a_silent_server(loop_kind: str) -> None:
    async def main() -> None:
        peers: List[Any] = []

        def silent(reader: Any, writer: Any) -> None:
            peers.append(writer)  # accepts TCP, never answers the handshake

        srv = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(OpenTimeout):
            await connect(f"ws://127.0.0.1:{port}/", open_timeout=0.3)
        for w in peers:
            w.close()
        srv.close()
        await srv.wait_closed()

    run(main(), loop_kind)


def test_server_open_timeout_drops_a_silent_client(loop_kind: str) -> None:
    async def main() -> None:
        async with await serve(echo, open_timeout=0.3) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await reader.read() == b""  # TCP closed by the server, no handshake
            writer.close()

    run(main(), loop_kind)


def test_keepalive_ping_timeout_1011(loop_kind: str) -> None:
    """The server stops reading (so it answers no pings): the client's keepalive fails the
    connection with 1011."""

    async def app(ws: Connection) -> None:
        ws.protocol.pause_reading()
        await ws.wait_closed()

    async def main() -> None:
        async with await serve(app, ping_interval=None) as server:
            ws = await connect(server.url, ping_interval=0.1, ping_timeout=0.2)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.sent_code == 1011
            assert isinstance(ws.ws.error, ConnectionClosedError)

    run(main(), loop_kind)


def test_keepalive_keeps_an_idle_connection_open(loop_kind: str) -> None:
    async def main() -> None:
        async with await serve(echo, ping_interval=0.05, ping_timeout=1) as server:
            async with connect(server.url, ping_interval=0.05, ping_timeout=1) as ws:
                await asyncio.sleep(0.4)  # several keepalive rounds both ways
                assert ws.is_open
                await ws.send("still here")
                assert await ws.recv() == "still here"
                assert ws.latency is not None  # the keepalive's pongs were timed

    run(main(), loop_kind)


def test_close_timeout_when_the_peer_never_answers(loop_kind: str) -> None:
    async def app(ws: Connection) -> None:
        ws.protocol.pause_reading()  # never reads our close frame
        await ws.wait_closed()

    async def main() -> None:
        async with await serve(app, ping_interval=None) as server:
            ws = await connect(server.url, close_timeout=0.3, ping_interval=None)
            await ws.close(1000)  # returns once the close timeout aborted TCP
            assert ws.close_code == 1006
            assert not ws.ws.clean

    run(main(), loop_kind)


# ------------------------------------------------------------------------------------ TLS


def test_tls_echo(loop_kind: str, tls: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls

    async def main() -> None:
        async with await serve(echo, ssl=server_ctx, max_size=BIG) as server:
            assert server.url.startswith("wss://")
            url = f"wss://localhost:{server.port}/"
            async with connect(url, ssl=client_ctx, max_size=BIG) as ws:
                for size in (0, 100, 300 * KiB, 4 * MiB):
                    message = payload(size, False)
                    await ws.send(message)
                    assert await ws.recv() == message
                assert ws.protocol.transport is not None
                assert ws.protocol.transport.get_extra_info("ssl_object") is not None

    run(main(), loop_kind)


def test_tls_unverified_certificate_fails(loop_kind: str, tls: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, _client_ctx = tls

    async def main() -> None:
        async with await serve(echo, ssl=server_ctx) as server:
            with pytest.raises(TLSError):
                await connect(f"wss://localhost:{server.port}/", open_timeout=5)  # system CAs only

    run(main(), loop_kind)


def test_failed_tls_handshakes_are_not_counted(loop_kind: str, tls: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """asyncio makes the server's protocol at accept time and never tells it when the TLS
    handshake fails: such connections must not hold a ``max_connections`` slot, stay in
    ``protocols``, or hold up shutdown."""
    server_ctx, client_ctx = tls

    async def main() -> None:
        server = await serve(echo, ssl=server_ctx, max_connections=1, close_timeout=30)
        url = f"wss://localhost:{server.port}/"
        for _ in range(3):
            with pytest.raises(TLSError):
                await connect(url, open_timeout=5)  # system CAs only: the client refuses
        assert not server.protocols
        async with connect(url, ssl=client_ctx) as ws:  # the one slot is free
            await ws.send("ok")
            assert await ws.recv() == "ok"
            assert len(server.protocols) == 1
        # Nothing left to wait for: the shutdown does not sit out its 30 s close timeout.
        await asyncio.wait_for(server.close(), 10)

    run(main(), loop_kind)


def test_shutdown_reads_the_close_of_a_connection_that_paused_reading(loop_kind: str) -> None:
    """The application paused reading: the shutdown's 1001 closing handshake still completes
    (reading resumes for it) instead of waiting out the close timeout."""

    async def app(ws: Connection) -> None:
        ws.protocol.pause_reading()
        await ws.wait_closed()

    async def main() -> None:
        server = await serve(app, ping_interval=None, close_timeout=30)
        ws = await connect(server.url, ping_interval=None)
        await ws.send("unread")
        await asyncio.wait_for(server.close(), 10)
        await ws.wait_closed()
        assert (ws.close_code, ws.ws.clean) == (1001, True)

    run(main(), loop_kind)


def test_close_with_a_full_receive_queue_completes_the_handshake(loop_kind: str) -> None:
    """The client's queue is full (reading paused) and the server keeps sending: the
    client's close() still reads the server's close frame (a clean 1000, not a close
    timeout); the messages queued before stay readable, in order, and the later ones beyond
    the queue are discarded and counted."""

    async def flood(ws: Connection) -> None:
        i = 0
        while ws.is_open:
            await ws.send(str(i))
            i += 1
            if i % 50 == 0:
                await asyncio.sleep(0)

    async def main() -> None:
        async with await serve(flood, ping_interval=None, compression=None) as server:
            ws = await connect(server.url, max_queue=4, close_timeout=30, ping_interval=None)
            while not ws.reading_paused:
                await asyncio.sleep(0.01)
            queued = len(ws._messages)
            await asyncio.wait_for(ws.close(1000), 10)
            assert (ws.close_code, ws.ws.clean) == (1000, True)
            got = [await ws.recv() for _ in range(queued)]
            assert got == [str(i) for i in range(queued)]
            assert ws.discarded > 0  # the flood that was in the socket buffers
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()

    run(main(), loop_kind)


def test_large_frames_through_the_zero_copy_buffer_and_eof_inside_one(loop_kind: str) -> None:
    """Inside a large payload the loop reads into the engine's buffer (the message object):
    the messages are exact whatever the read sizes, and an EOF in the middle of one (asyncio
    then never calls buffer_updated) ends the connection with 1006, nothing delivered."""
    from .test_loop_helpers import client_frame, raw_handshake

    got: List[Any] = []

    async def app(ws: Connection) -> None:
        try:
            async for message in ws:
                got.append(len(message))
        finally:
            got.append((ws.close_code, ws.ws.clean))

    big = payload(3 * MiB + 5, False)

    async def main() -> None:
        async with await serve(app, compression=None, max_size=BIG) as server:
            loop = asyncio.get_running_loop()

            def raw() -> None:
                s, _rest = raw_handshake(server.port)
                with s:
                    wire = client_frame(0x2, big) + client_frame(0x2, b"after")
                    wire += client_frame(0x2, big)[: 1 * MiB]  # cut inside the second
                    for i in range(0, len(wire), 100_003):
                        s.sendall(wire[i : i + 100_003])

            await loop.run_in_executor(None, raw)
            while len(got) < 3:
                await asyncio.sleep(0.01)
            assert got == [len(big), 5, (1006, False)]
            assert not server.protocols

    run(main(), loop_kind)


def test_connect_refused_and_socket_options(loop_kind: str) -> None:
    async def main() -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with pytest.raises(ConnectRefused):
            await connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
        async with await serve(echo) as server:
            opt = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            async with connect(server.url, socket_options=[opt]) as ws:
                sock = ws.protocol.transport.get_extra_info("socket")  # type: ignore[union-attr]
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0

    run(main(), loop_kind)


# ------------------------------------------------------------------------------------ callback face


class EchoHandler(Handler):
    """The shared Handler interface: the same class runs under every callback adapter."""

    def on_text(self, ws: WebSocket, data: str) -> None:
        ws.send_text(data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        ws.send_binary(data)


class Recorder(Handler):
    """A client handler: sends a script on open, records what comes back, closes at the end."""

    def __init__(self, script: List[Any], done: Optional[asyncio.Future[None]] = None) -> None:
        self.script = script
        self.got: List[Any] = []
        self.events: List[str] = []
        self.done = done
        self.closed_with: Optional[Tuple[int, str, bool]] = None
        self.errors: List[BaseException] = []

    def on_open(self, ws: WebSocket) -> None:
        self.events.append("open")
        for message in self.script:
            ws.send(message)

    def on_text(self, ws: WebSocket, data: str) -> None:
        self._got(ws, data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        self._got(ws, data)

    def _got(self, ws: WebSocket, data: Any) -> None:
        self.got.append(data)
        if len(self.got) == len(self.script):
            ws.close(1000, "done")

    def on_error(self, ws: WebSocket, exc: BaseException) -> None:
        self.errors.append(exc)

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.events.append("close")
        self.closed_with = (code, reason, clean)
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


def test_callback_face_shared_handler(loop_kind: str) -> None:
    script: List[Any] = ["a", b"b", "é" * 1000, bytes(300 * KiB)]

    async def main() -> None:
        server = await serve_handler(EchoHandler, max_size=BIG)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rec = Recorder(script, done)
        ws = await open_handler(server.url, rec)
        await done
        assert rec.got == script
        assert rec.events == ["open", "close"]
        assert rec.closed_with == (1000, "", True)  # the server echoes the code, not the reason
        assert rec.errors == []
        assert ws.closed
        await server.close()

    run(main(), loop_kind)


def test_callback_face_reject_and_cross_thread_send(loop_kind: str) -> None:
    class Gate(EchoHandler):
        def on_request(self, ws: WebSocket, request: Request) -> Any:
            return Reject(403, body=b"no") if request.path == "/private" else None

    async def main() -> None:
        server = await serve_handler(Gate)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rec = Recorder([], done)
        await open_handler(server.url + "private", rec)
        await done
        assert isinstance(rec.errors[0], InvalidStatus) and rec.errors[0].status == 403
        assert rec.closed_with is not None and rec.closed_with[0] == 1006

        done2: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rec2 = Recorder([], done2)  # sends nothing on open: a thread sends
        ws = await open_handler(server.url, rec2)
        while not ws.is_open:
            await asyncio.sleep(0.01)
        rec2.script = ["from a thread"]  # close after one echo
        t = threading.Thread(target=ws.send_text, args=("from a thread",))
        t.start()
        await done2
        t.join(5)
        assert rec2.got == ["from a thread"]
        await server.close()

    run(main(), loop_kind)


def test_mode_runs_server_and_client_in_threads() -> None:
    """The CLI's Mode objects: run_server in a thread until ``stop``, run_client returns
    after on_close. (Run without asyncio.Runner, so this works on Python 3.10 too.)"""
    for mode in (MODE, UVLOOP) if uvloop is not None else (MODE,):
        ready: List[str] = []
        got_url = threading.Event()
        stop = threading.Event()

        def on_ready(url: str, ready: List[str] = ready, got_url: threading.Event = got_url) -> None:
            ready.append(url)
            got_url.set()

        th = threading.Thread(
            target=mode.run_server,
            args=("127.0.0.1", 0, EchoHandler, ServerOptions(), on_ready, stop),
        )
        th.start()
        try:
            assert got_url.wait(10)
            rec = Recorder(["x", b"y"])
            mode.run_client(ready[0], rec, ClientOptions())
            assert rec.got == ["x", b"y"]
            assert rec.closed_with == (1000, "", True)  # the server echoes the code, not the reason
            bad = Recorder([])
            mode.run_client("ws://127.0.0.1:1/", bad, ClientOptions(open_timeout=5))
            assert isinstance(bad.errors[0], ConnectRefused)
        finally:
            stop.set()
            th.join(15)
        assert not th.is_alive()


def test_handler_exception_closes_with_1011(loop_kind: str) -> None:
    class Broken(Handler):
        def on_text(self, ws: WebSocket, data: str) -> None:
            raise ValueError("bad handler")

    async def main() -> None:
        server = await serve_handler(Broken)
        ws = await connect(server.url)
        await ws.send("hi")
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.code == 1011
        await server.close()

    run(main(), loop_kind)
