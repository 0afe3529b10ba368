"""wsfast.loop: one selector loop, many client and server connections (loopback only)."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

from wsfast.exceptions import ConnectionClosedError, OpenTimeout, ProtocolError, QueueFull
from wsfast.handler import Accept, Handler, Reject, WebSocket
from wsfast.handshake import accept_key
from wsfast.loop import Loop

from .test_loop_helpers import (
    Echo,
    FrameReader,
    LoopThread,
    Recorder,
    client_frame,
    close_code,
    raise_nofile,
    raw_connect,
    raw_handshake,
    read_all,
    read_head,
    request_bytes,
    wait_for,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_thread_leak")]

FAST: Dict[str, Any] = {"ping_interval": None, "close_timeout": 2.0, "open_timeout": 5.0}


def run_until(loop: Loop, pred: Any, timeout: float = 10.0) -> None:
    """Run ``loop`` on this thread until ``pred()``; fail after ``timeout``."""

    def check() -> None:
        if pred():
            loop.leave()
        else:
            loop.call_later(0.005, check)

    expired: List[bool] = []

    def give_up() -> None:
        expired.append(True)
        loop.leave()

    t = loop.call_later(timeout, give_up)
    loop.call_soon(check)
    loop.run_forever()
    t.cancel()
    assert not expired, "timed out"


# --------------------------------------------------------------------------- basics


def test_echo_text_binary_in_one_loop() -> None:
    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Echo, **FAST)
        rec = Recorder(send=("hello", b"\x00\x01", ["frag", "ment"]), close_after=3)
        ws = loop.connect(server.url, rec, **FAST)
        assert isinstance(ws, WebSocket)
        run_until(loop, rec.done.is_set)
        assert rec.messages == ["hello", b"\x00\x01", "fragment"]
        assert rec.close == (1000, "", True)
        assert rec.errors == []
        stats = loop.stats()
        assert stats["messages_sent"] >= 6 and stats["messages_received"] >= 6
        assert stats["bytes_sent"] > 0 and stats["bytes_received"] > 0


def test_run_returns_when_idle() -> None:
    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Echo, **FAST)
        rec = Recorder(send=("x",), close_after=1)

        class CloseServer(Recorder):
            def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
                super().on_close(ws, code, reason, clean)
                server.close()

        loop.connect(server.url, CloseServer(send=("x",), close_after=1), **FAST)
        del rec
        loop.run()  # returns: no listener, no connection, no timer left
        assert loop.open_connections == 0


def test_unix_listener_and_several_listeners(tmp_path: Any) -> None:
    path = str(tmp_path / "ws.sock")

    class Tag(Handler):
        def __init__(self, tag: str) -> None:
            self.tag = tag

        def on_text(self, ws: WebSocket, data: str) -> None:
            ws.send_text(self.tag + data)

    with Loop() as loop:
        a = loop.listen("127.0.0.1", 0, lambda: Tag("a:"), **FAST)
        b = loop.listen("127.0.0.1", 0, lambda: Tag("b:"), **FAST)
        u = loop.listen_unix(path, lambda: Tag("u:"), **FAST)
        recs = [Recorder(send=("1",), close_after=1) for _ in range(3)]
        loop.connect(a.url, recs[0], **FAST)
        loop.connect(b.url, recs[1], **FAST)
        loop.connect("ws://localhost/", recs[2], unix_path=path, **FAST)
        run_until(loop, lambda: all(r.done.is_set() for r in recs))
        assert [r.messages for r in recs] == [["a:1"], ["b:1"], ["u:1"]]
        assert u.url == f"ws+unix:{path}"


def test_accept_hook_subprotocol_headers_and_reject() -> None:
    class Auth(Echo):
        def on_request(self, ws: WebSocket, request: Any) -> Any:
            if request.header("authorization") != "Bearer ok":
                return Reject(401, [("WWW-Authenticate", "Bearer")], b"no\n")
            return Accept("chat", [("X-Hello", "1")])

    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Auth, **FAST)
        good = Recorder(send=("hi",), close_after=1)
        bad = Recorder()
        loop.connect(server.url, good, subprotocols=["chat"], headers=[("Authorization", "Bearer ok")], **FAST)
        loop.connect(server.url, bad, **FAST)
        run_until(loop, lambda: good.done.is_set() and bad.done.is_set())
        assert good.messages == ["hi"]
        assert good.ws is not None and good.ws.subprotocol == "chat"
        assert good.ws.response is not None
        assert ("x-hello", "1") in [(k.lower(), v) for k, v in good.ws.response.headers]
        assert len(bad.errors) == 1 and getattr(bad.errors[0], "status", None) == 401
        assert bad.close is not None and bad.close[0] == 1006


def test_connect_failures_reach_the_handler() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with Loop() as loop:
        rec = Recorder()
        loop.connect(f"ws://127.0.0.1:{port}/", rec, **FAST)
        run_until(loop, rec.done.is_set)
        assert type(rec.errors[0]).__name__ == "ConnectRefused"
        assert rec.close == (1006, "", False)


def test_connect_from_inside_a_handler_callback() -> None:
    """ws-rs's Sender::connect: a server handler opens a client connection in the same loop."""
    with Loop() as loop:
        upstream = loop.listen("127.0.0.1", 0, Echo, **FAST)
        results: List[Any] = []

        class Relay(Handler):
            def on_text(self, ws: WebSocket, data: str) -> None:
                client = ws  # answer the original client with what upstream echoed

                class Up(Handler):
                    def on_open(self, up: WebSocket) -> None:
                        up.send_text("via upstream: " + data)

                    def on_text(self, up: WebSocket, echoed: str) -> None:
                        client.send_text(echoed)
                        up.close()

                loop.connect(upstream.url, Up(), **FAST)

        relay = loop.listen("127.0.0.1", 0, Relay, **FAST)
        rec = Recorder(send=("ping",), close_after=1)
        loop.connect(relay.url, rec, **FAST)
        run_until(loop, rec.done.is_set)
        results = rec.messages
        assert results == ["via upstream: ping"]


# --------------------------------------------------------------------------- scale


@pytest.mark.timeout(120)
def test_thousand_plus_connections_clients_and_servers_in_one_loop() -> None:
    n = 600  # 600 clients + 600 server sides = 1,200 connections in one loop
    raise_nofile(2 * n + 200)
    import resource

    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * n + 100:
        pytest.skip("cannot raise RLIMIT_NOFILE")
    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Echo, backlog=2048, **FAST)
        peak = [0]
        recs: List[Recorder] = []
        opened = [0]

        class C(Recorder):
            def on_open(self, ws: WebSocket) -> None:
                super().on_open(ws)
                opened[0] += 1
                peak[0] = max(peak[0], loop.open_connections)
                if opened[0] == n:  # everyone is connected: now talk
                    for r in recs:
                        assert r.ws is not None
                        r.ws.send_text(f"m{id(r)}")

        for _ in range(n):
            r = C(close_after=1)
            recs.append(r)
            loop.connect(server.url, r, **FAST)
        run_until(loop, lambda: all(r.done.is_set() for r in recs), timeout=90)
        assert peak[0] >= 2 * n
        assert all(r.messages == [f"m{id(r)}"] for r in recs)
        assert all(r.close == (1000, "", True) for r in recs)
        assert loop.connections_opened == 2 * n


# --------------------------------------------------------------------------- timers


def test_timers_order_cancel_and_lazy_deletion() -> None:
    with Loop() as loop:
        fired: List[Any] = []
        loop.call_later(0.03, fired.append, "c")
        loop.call_later(0.01, fired.append, "a")
        t = loop.call_later(0.02, fired.append, "never")
        loop.call_later(0.02, fired.append, "b")
        t.cancel()
        t.cancel()  # idempotent
        handles = [loop.call_later(100, fired.append, "x") for _ in range(1000)]
        for h in handles:
            h.cancel()
        assert loop.timers < 1000  # most cancelled entries were dropped from the heap
        loop.run()  # returns once the live timers fired (cancelled ones do not keep it up)
        assert fired == ["a", "b", "c"]


def test_timer_from_other_thread_and_raising_timer() -> None:
    with LoopThread() as lt:
        got = threading.Event()
        lt.loop.call_later(0, lambda: 1 / 0)  # logged; the loop goes on
        lt.loop.call_later(0.01, got.set)
        assert got.wait(5)


def test_handler_timer_via_ws_call_later() -> None:
    class Later(Handler):
        def on_open(self, ws: WebSocket) -> None:
            ws.call_later(0.02, lambda: ws.send_text("tick"))

    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Later, **FAST)
        rec = Recorder(close_after=1)
        loop.connect(server.url, rec, **FAST)
        run_until(loop, rec.done.is_set)
        assert rec.messages == ["tick"]


def test_keepalive_ping_and_pong_timeout_1011() -> None:
    """The server pings an idle peer; a peer that never answers is failed with 1011."""
    with LoopThread() as lt:
        errors: List[BaseException] = []

        class H(Handler):
            def on_error(self, ws: WebSocket, exc: BaseException) -> None:
                errors.append(exc)

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, H, ping_interval=0.1, ping_timeout=0.2,
                                                close_timeout=1.0))
        s, rest = raw_handshake(server.port)
        with s:
            r = FrameReader(s, rest)
            op, payload = r.frame()
            assert op == 0x9 and len(payload) == 4  # keepalive ping, never answered
            while op == 0x9:  # (a ping per interval until the pong timeout)
                op, payload = r.frame()
            assert op == 0x8 and close_code(payload) == 1011
        wait_for(lambda: errors)
        assert isinstance(errors[0], ConnectionClosedError) and errors[0].sent_code == 1011


def test_keepalive_answered_keeps_connection() -> None:
    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Echo, ping_interval=0.05, ping_timeout=0.5, close_timeout=2.0)
        pongs: List[Any] = []

        class C(Recorder):
            def on_open(self, ws: WebSocket) -> None:
                super().on_open(ws)
                ws.call_later(0.4, ws.close)

            def on_ping(self, ws: WebSocket, payload: bytes) -> None:
                pongs.append(payload)

        rec = C()
        loop.connect(server.url, rec, ping_interval=None, close_timeout=2.0)
        run_until(loop, rec.done.is_set)
        assert len(pongs) >= 2
        assert rec.close == (1000, "", True)


# --------------------------------------------------------------------------- backpressure


def _flood(s: socket.socket, stop: threading.Event, sent: List[int]) -> None:
    frame = client_frame(0x2, b"x" * 16384)
    s.setblocking(False)
    while not stop.is_set():
        try:
            sent[0] += s.send(frame)
        except BlockingIOError:
            time.sleep(0.002)
        except OSError:
            return


@pytest.mark.timeout(60)
def test_slow_reader_wait_policy_bounds_memory() -> None:
    """A peer that sends and never reads: the echo stops reading from it at high_water,
    so what the server buffers stays bounded however long the peer goes on."""
    high = 256 * 1024
    lt = LoopThread(Loop(high_water=high, low_water=64 * 1024))
    with lt:
        paused: List[bool] = []

        class E(Echo):
            def on_pause(self, ws: WebSocket) -> None:
                paused.append(True)

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, E, **FAST))
        s, _ = raw_handshake(server.port, rcvbuf=4096)
        stop = threading.Event()
        sent = [0]
        t = threading.Thread(target=_flood, args=(s, stop, sent))
        t.start()
        import tracemalloc

        tracemalloc.start()
        try:
            wait_for(lambda: paused, timeout=20)
            traced0 = tracemalloc.get_traced_memory()[0]
            samples = []
            for _ in range(20):
                time.sleep(0.02)
                samples.append(lt.call(lambda: lt.loop.bytes_buffered))
            before = sent[0]
            time.sleep(0.2)
            stalled = sent[0] - before  # the server is not reading: the peer's sends stall
            grown = tracemalloc.get_traced_memory()[0] - traced0
        finally:
            tracemalloc.stop()
            stop.set()
            t.join(5)
            s.close()
        # Bounded: at most high_water plus one read budget of echoes (1 MiB read cap).
        assert max(samples) <= high + (1 << 20) + 65536, samples
        assert stalled < 4 << 20
        assert grown < 4 << 20, grown  # Python heap growth while the flood goes on
        assert lt.loop.pauses >= 1


@pytest.mark.parametrize("code", [1008, 1013])
def test_slow_reader_drop_policy(code: int) -> None:
    lt = LoopThread(Loop(high_water=64 * 1024, low_water=16 * 1024, slow_consumer="drop",
                         max_buffer=256 * 1024, slow_consumer_timeout=0.2, slow_consumer_code=code))
    with lt:
        closes: List[Any] = []

        class Producer(Handler):
            def on_open(self, ws: WebSocket) -> None:
                self.tick(ws)

            def tick(self, ws: WebSocket) -> None:
                if ws.is_open:
                    for _ in range(8):
                        ws.send_binary(b"y" * 8192)  # a producer that ignores on_pause
                    ws.call_later(0.001, lambda: self.tick(ws))

            def on_close(self, ws: WebSocket, c: int, reason: str, clean: bool) -> None:
                closes.append((ws.conn.close_code_sent, type(ws.error)))

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, Producer, **FAST))
        s, _ = raw_handshake(server.port, rcvbuf=4096)
        with s:
            wait_for(lambda: closes, timeout=20)
        assert closes == [(code, ConnectionClosedError)]
        assert lt.loop.dropped_slow_consumers == 1
        wait_for(lambda: lt.call(lambda: lt.loop.bytes_buffered) == 0)


def test_slow_consumer_handler_decision() -> None:
    asked: List[WebSocket] = []

    def policy(ws: WebSocket) -> bool:
        asked.append(ws)
        return False  # keep it

    lt = LoopThread(Loop(high_water=32 * 1024, low_water=8 * 1024, slow_consumer=policy,
                         max_buffer=64 * 1024, slow_consumer_timeout=None))
    with lt:
        class Burst(Handler):
            def on_open(self, ws: WebSocket) -> None:
                ws.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # type: ignore[attr-defined]
                for _ in range(64):
                    ws.send_binary(b"z" * 4096)

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, Burst, **FAST))
        s, rest = raw_handshake(server.port, rcvbuf=4096)
        with s:
            wait_for(lambda: asked)
            assert lt.loop.dropped_slow_consumers == 0
            # Now read everything: the buffer drains and the connection goes on.
            r = FrameReader(s, rest)
            for _ in range(64):
                assert r.frame() == (0x2, b"z" * 4096)


def test_backpressure_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="low_water"):
        Loop(high_water=1000, low_water=2000)
    # The policy acts on a paused peer, and reading pauses only above high_water.
    with pytest.raises(ValueError, match="max_buffer must not be below high_water"):
        Loop(high_water=64 * 1024, low_water=16 * 1024, slow_consumer="drop", max_buffer=1024)
    with pytest.raises(ValueError, match="slow_consumer_code"):
        Loop(slow_consumer="drop", slow_consumer_code=1011)
    with pytest.raises(ValueError, match="slow_consumer is"):
        Loop(slow_consumer="close")  # type: ignore[arg-type]


def test_pause_resume_callbacks() -> None:
    events: List[str] = []
    lt = LoopThread(Loop(high_water=32 * 1024, low_water=8 * 1024))
    with lt:
        class Burst(Handler):
            def on_open(self, ws: WebSocket) -> None:
                ws.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # type: ignore[attr-defined]
                for _ in range(64):
                    ws.send_binary(b"z" * 4096)

            def on_pause(self, ws: WebSocket) -> None:
                events.append("pause")

            def on_resume(self, ws: WebSocket) -> None:
                events.append("resume")

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, Burst, **FAST))
        s, rest = raw_handshake(server.port, rcvbuf=4096)
        with s:
            wait_for(lambda: events)
            r = FrameReader(s, rest)
            for _ in range(64):
                r.frame()
            wait_for(lambda: "resume" in events)
        assert events[:2] == ["pause", "resume"]


# --------------------------------------------------------------------------- threads


def test_sends_and_broadcast_from_eight_threads() -> None:
    n_clients, n_threads, per_thread = 4, 8, 50
    with LoopThread() as lt:
        server_side: List[WebSocket] = []

        class S(Handler):
            def on_open(self, ws: WebSocket) -> None:
                server_side.append(ws)

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, S, **FAST))
        recs = [Recorder() for _ in range(n_clients)]
        for r in recs:
            lt.loop.connect(server.url, r, **FAST)  # connect from this (non-loop) thread
        wait_for(lambda: len(server_side) == n_clients and all(r.opened.is_set() for r in recs))

        def worker(i: int) -> None:
            for j in range(per_thread):
                for ws in server_side:
                    while True:
                        try:
                            ws.send_text(f"t{i}:{j}")
                            break
                        except QueueFull:
                            time.sleep(0.001)
                while True:
                    try:
                        lt.loop.broadcast(f"b{i}:{j}")
                        break
                    except QueueFull:
                        time.sleep(0.001)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        total = n_threads * per_thread * 2
        wait_for(lambda: all(len(r.messages) >= total for r in recs), timeout=30)
        for r in recs:
            assert len(r.messages) == total
            for i in range(n_threads):  # each thread's own messages arrive in its order
                mine = [m for m in r.messages if m.startswith(f"t{i}:")]
                assert mine == [f"t{i}:{j}" for j in range(per_thread)]
                mine = [m for m in r.messages if m.startswith(f"b{i}:")]
                assert mine == [f"b{i}:{j}" for j in range(per_thread)]
        for r in recs:
            assert r.ws is not None
            r.ws.close()  # from this thread: queued to the loop
        wait_for(lambda: all(r.done.is_set() for r in recs))


def test_cross_thread_queue_full_is_reported() -> None:
    lt = LoopThread(Loop(queue_size=8))
    with lt:
        block = threading.Event()
        server_side: List[WebSocket] = []

        class S(Handler):
            def on_open(self, ws: WebSocket) -> None:
                server_side.append(ws)

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, S, **FAST))
        rec = Recorder()
        lt.loop.connect(server.url, rec, **FAST)
        wait_for(lambda: server_side and rec.opened.is_set())
        lt.loop.call_soon_threadsafe(block.wait, 5)  # the loop is busy: commands pile up
        time.sleep(0.05)
        ws = server_side[0]
        with pytest.raises(QueueFull):
            for i in range(100):
                ws.send_text(str(i))
        block.set()
        wait_for(lambda: len(rec.messages) == 8)
        assert rec.messages == [str(i) for i in range(8)]


def test_broadcast_shares_one_frame_and_handles_compression() -> None:
    with Loop() as loop:
        server_side: List[WebSocket] = []

        class S(Handler):
            def on_open(self, ws: WebSocket) -> None:
                server_side.append(ws)

        plain = loop.listen("127.0.0.1", 0, S, compression=None, **FAST)
        comp = loop.listen("127.0.0.1", 0, S, **FAST)
        recs = [Recorder() for _ in range(4)]
        for i, r in enumerate(recs):
            loop.connect((plain if i < 2 else comp).url, r, **FAST)
        run_until(loop, lambda: len(server_side) == 4 and all(r.opened.is_set() for r in recs))
        assert loop.broadcast("hello all") == 8  # the 4 server sides and the 4 clients
        assert loop.broadcast(b"bin", server_side[:2]) == 2
        run_until(loop, lambda: all(len(r.messages) >= (2 if i < 2 else 1) for i, r in enumerate(recs)))
        assert [r.messages for r in recs] == [["hello all", b"bin"]] * 2 + [["hello all"]] * 2
        assert [sorted(ws.extensions) for ws in server_side].count(["permessage-deflate"]) == 2


# --------------------------------------------------------------------------- TLS


def test_tls_server_and_client(tls: Any) -> None:
    server_ctx, client_ctx = tls
    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Echo, ssl=server_ctx, **FAST)
        assert server.url.startswith("wss://")
        big = os.urandom(300_000)
        rec = Recorder(send=("secure", big), close_after=2)
        loop.connect(server.url, rec, ssl=client_ctx, **FAST)
        run_until(loop, rec.done.is_set)
        assert rec.messages == ["secure", big]
        assert rec.close == (1000, "", True)


def test_tls_bad_certificate_is_tls_error(tls: Any) -> None:
    import ssl

    server_ctx, _ = tls
    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Echo, ssl=server_ctx, **FAST)
        rec = Recorder()
        loop.connect(server.url, rec, ssl=ssl.create_default_context(), **FAST)  # does not trust the CA
        run_until(loop, lambda: rec.done.is_set() and loop.open_connections == 0)
        assert type(rec.errors[0]).__name__ == "TLSError"


# --------------------------------------------------------------------------- shutdown


def test_graceful_shutdown_from_another_thread() -> None:
    lt = LoopThread()
    with lt:
        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, Echo, **FAST))
        with Loop() as client_loop:
            recs = [Recorder() for _ in range(3)]
            for r in recs:
                client_loop.connect(server.url, r, **FAST)
            run_until(client_loop, lambda: all(r.opened.is_set() for r in recs))
            lt.loop.shutdown(1001, timeout=5)
            run_until(client_loop, lambda: all(r.done.is_set() for r in recs))
            lt.thread.join(10)  # run_forever returns once everyone closed
            assert not lt.thread.is_alive()
            assert all(r.close == (1001, "going away", True) for r in recs)
        with pytest.raises(OSError):
            raw_connect(server.port, timeout=1).close()  # no longer accepting


def test_graceful_shutdown_times_out_on_unresponsive_peer() -> None:
    lt = LoopThread()
    with lt:
        closed: List[Any] = []

        class H(Handler):
            def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
                closed.append((ws.conn.close_code_sent, clean))

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, H, ping_interval=None, close_timeout=30))
        s, rest = raw_handshake(server.port)
        with s:
            lt.loop.shutdown(timeout=0.3)  # the raw peer never answers the close
            lt.thread.join(10)
            assert not lt.thread.is_alive()
            op, payload = FrameReader(s, rest).frame()
            assert op == 0x8 and close_code(payload) == 1001
        assert closed == [(1001, False)]


def test_immediate_stop_from_another_thread() -> None:
    lt = LoopThread()
    with lt:
        closed: List[int] = []

        class H(Handler):
            def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
                closed.append(code)

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, H, **FAST))
        s, _ = raw_handshake(server.port)
        with s:
            wait_for(lambda: lt.loop.open_connections == 1)
            lt.loop.stop()
            lt.thread.join(10)
            assert not lt.thread.is_alive()
            assert read_all(s) == b""  # TCP closed without a close frame
        assert closed == [1006]


def test_shutdown_from_a_signal_handler() -> None:
    import signal

    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Echo, **FAST)
        rec = Recorder()
        loop.connect(server.url, rec, **FAST)
        old = signal.signal(signal.SIGUSR1, lambda *a: loop.shutdown())
        try:
            loop.call_later(0.1, os.kill, os.getpid(), signal.SIGUSR1)
            loop.run_forever()  # returns after the graceful shutdown
        finally:
            signal.signal(signal.SIGUSR1, old)
        assert rec.close is not None and rec.close[0] == 1001


# --------------------------------------------------------------------------- limits


def test_max_connections_answers_503_before_the_upgrade() -> None:
    with LoopThread() as lt:
        made: List[int] = []

        def factory() -> Handler:
            made.append(1)
            return Echo()

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, factory, max_connections=1, **FAST))
        first, _ = raw_handshake(server.port)
        with first:
            s = raw_connect(server.port)
            with s:
                s.sendall(request_bytes(server.port))
                assert read_all(s) == (
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\n"
                    b"Connection: close\r\n\r\ntoo many connections\n"
                )
            assert made == [1]  # the factory was not called for the refused one
            assert lt.loop.rejected_busy == 1
        wait_for(lambda: lt.loop.open_connections == 0)
        second, _ = raw_handshake(server.port)  # room again
        second.close()


def test_x_forwarded_for_is_ignored_unless_trusted() -> None:
    with LoopThread() as lt:
        seen: List[Any] = []

        class H(Handler):
            def on_request(self, ws: WebSocket, request: Any) -> None:
                seen.append(ws.remote_address[0])

        plain = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, H, **FAST))
        trusted = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, H, forwarded_allow_ips=["127.0.0.1"], **FAST))
        other = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, H, forwarded_allow_ips=["10.9.9.9"], **FAST))
        for server in (plain, trusted, other):
            s, _ = raw_handshake(server.port, "X-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n")
            s.close()
        assert seen == ["127.0.0.1", "198.51.100.2", "127.0.0.1"]


def test_reuse_port_two_listeners_share_a_port() -> None:
    with Loop() as loop:
        a = loop.listen("127.0.0.1", 0, Echo, reuse_port=True, **FAST)
        b = loop.listen("127.0.0.1", a.port, Echo, reuse_port=True, **FAST)
        assert a.port == b.port
        with pytest.raises(OSError):
            loop.listen("127.0.0.1", a.port, Echo, **FAST)


# --------------------------------------------------------------------------- failures


def test_handler_raising_closes_with_1011_and_the_loop_survives() -> None:
    class Boom(Echo):
        def on_text(self, ws: WebSocket, data: str) -> None:
            if data == "boom":
                raise RuntimeError("handler bug")
            super().on_text(ws, data)

    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Boom, **FAST)
        bad = Recorder(send=("boom",))
        good = Recorder(send=("fine",), close_after=1)
        loop.connect(server.url, bad, **FAST)
        run_until(loop, bad.done.is_set)
        loop.connect(server.url, good, **FAST)
        run_until(loop, good.done.is_set)
        assert bad.close is not None and bad.close[0] == 1011
        assert good.messages == ["fine"] and good.close == (1000, "", True)


def test_oversized_headers_get_431() -> None:
    with LoopThread() as lt:
        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, Echo, **FAST))
        s = raw_connect(server.port)
        with s:
            s.sendall(request_bytes(server.port, "X-Big: " + "a" * 20000 + "\r\n"))
            head, _ = read_head(s)
            assert head.startswith(b"HTTP/1.1 431 ")


def test_slowloris_handshake_bounded_by_open_timeout() -> None:
    with LoopThread() as lt:
        errors: List[BaseException] = []

        class H(Echo):
            def on_error(self, ws: WebSocket, exc: BaseException) -> None:
                errors.append(exc)

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, H, open_timeout=0.3, ping_interval=None))
        s = raw_connect(server.port)
        with s:
            req = request_bytes(server.port)
            closed = False
            for i in range(200):  # one byte every 20 ms: would take 4 s
                try:
                    s.sendall(req[i : i + 1])
                except OSError:
                    closed = True
                    break
                time.sleep(0.02)
                if lt.loop.open_connections == 0:
                    closed = True
                    break
            assert closed
            assert read_all(s) == b""
        wait_for(lambda: errors)
        assert isinstance(errors[0], OpenTimeout)


def test_bad_frame_gets_1002() -> None:
    with LoopThread() as lt:
        errors: List[BaseException] = []

        class H(Echo):
            def on_error(self, ws: WebSocket, exc: BaseException) -> None:
                errors.append(exc)

        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, H, **FAST))
        s, rest = raw_handshake(server.port)
        with s:
            s.sendall(b"\x81\x05hello")  # unmasked client frame: RFC 6455 §5.1
            op, payload = FrameReader(s, rest).frame()
            assert op == 0x8 and close_code(payload) == 1002
        wait_for(lambda: errors)
        assert isinstance(errors[0], ProtocolError)


def test_open_timeout_for_client_against_silent_server() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        with Loop() as loop:
            rec = Recorder()
            loop.connect(f"ws://127.0.0.1:{silent.getsockname()[1]}/", rec, open_timeout=0.2, ping_interval=None)
            run_until(loop, rec.done.is_set)
            assert isinstance(rec.errors[0], OpenTimeout)
    finally:
        silent.close()


def test_mode_run_server_and_run_client() -> None:
    from wsfast._modes import get_mode
    from wsfast._options import ClientOptions, ServerOptions

    mode = get_mode("loop")
    assert mode.name == "loop" and mode.has_server
    stop = threading.Event()
    urls: List[str] = []
    ready = threading.Event()

    def ready_cb(url: str) -> None:
        urls.append(url)
        ready.set()

    t = threading.Thread(target=mode.run_server,
                         args=("127.0.0.1", 0, Echo, ServerOptions(ping_interval=None), ready_cb, stop))
    t.start()
    try:
        assert ready.wait(5)
        rec = Recorder(send=("via mode",), close_after=1)
        mode.run_client(urls[0], rec, ClientOptions(ping_interval=None))
        assert rec.messages == ["via mode"] and rec.close == (1000, "", True)
        # A second client stays open: the server's graceful stop closes it with 1001.
        rec2 = Recorder()
        ct = threading.Thread(target=mode.run_client, args=(urls[0], rec2, ClientOptions(ping_interval=None)))
        ct.start()
        assert rec2.opened.wait(5)
    finally:
        stop.set()
        t.join(15)
    ct.join(15)
    assert not t.is_alive() and not ct.is_alive()
    assert rec2.close is not None and rec2.close[0] == 1001


def test_mode_run_client_bad_uri() -> None:
    from wsfast._modes import get_mode
    from wsfast._options import ClientOptions

    rec = Recorder()
    get_mode("loop").run_client("http://nope/", rec, ClientOptions())
    assert type(rec.errors[0]).__name__ == "InvalidURI" and rec.close is not None


def _unused(x: Optional[int]) -> None:  # keep imports used by type checkers
    pass


def test_broadcast_encodes_once_for_uncompressed_server_connections() -> None:
    with Loop() as loop:
        server_side: List[WebSocket] = []

        class S(Handler):
            def on_open(self, ws: WebSocket) -> None:
                server_side.append(ws)

        server = loop.listen("127.0.0.1", 0, S, compression=None, **FAST)
        recs = [Recorder() for _ in range(5)]
        for r in recs:
            loop.connect(server.url, r, **FAST)
        run_until(loop, lambda: len(server_side) == 5 and all(r.opened.is_set() for r in recs))
        written: List[Any] = []
        for ws in server_side:
            t = ws.transport
            orig = t.write

            def spy(chunks: List[bytes], orig: Any = orig) -> None:
                written.append(chunks)
                orig(chunks)

            t.write = spy  # type: ignore[method-assign]
        assert loop.broadcast("x" * 1000, server_side) == 5
        frames = [c[0] for c in written]
        assert len(frames) == 5 and all(f is frames[0] for f in frames)  # one bytes object
        run_until(loop, lambda: all(r.messages == ["x" * 1000] for r in recs))


def test_keepalive_timers_stay_one_heap_entry_per_connection() -> None:
    n = 150
    with Loop() as loop:
        server = loop.listen("127.0.0.1", 0, Echo, ping_interval=0.02, ping_timeout=1.0, close_timeout=2.0)
        recs = [Recorder() for _ in range(n)]
        for r in recs:
            loop.connect(server.url, r, ping_interval=0.02, ping_timeout=1.0, close_timeout=2.0)
        run_until(loop, lambda: all(r.opened.is_set() for r in recs))
        sizes: List[int] = []

        def sample() -> None:
            sizes.append(loop.timers)
            if len(sizes) < 40:
                loop.call_later(0.01, sample)

        sample()
        run_until(loop, lambda: len(sizes) >= 40)  # 0.4 s: about 20 ping intervals
        assert max(sizes) <= 2 * n + 300, max(sizes)  # no growth with the number of ticks
        assert all(not r.done.is_set() for r in recs)  # pings answered: nobody timed out
        for r in recs:
            assert r.ws is not None
            r.ws.close()
        run_until(loop, lambda: all(r.done.is_set() for r in recs))


def test_close_timeout_against_a_peer_that_never_answers_the_close() -> None:
    import base64
    import hashlib

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    got: List[bytes] = []

    def fake_server() -> None:
        conn, _ = lsock.accept()
        with conn:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            lines = head.split(b"\r\n")
            key = [ln.split(b":", 1)[1].strip() for ln in lines if ln.lower().startswith(b"sec-websocket-key")][0]
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            got.append(read_all(conn))  # reads the close frame, never answers; ends at EOF

    t = threading.Thread(target=fake_server)
    t.start()
    try:
        with Loop() as loop:
            class C(Recorder):
                def on_open(self, ws: WebSocket) -> None:
                    super().on_open(ws)
                    ws.close(1000)

            rec = C()
            loop.connect(f"ws://127.0.0.1:{lsock.getsockname()[1]}/", rec, compression=None, ping_interval=None,
                         close_timeout=0.2)
            run_until(loop, rec.done.is_set)
            assert rec.close == (1006, "", False)  # no close frame came back: TCP closed after 0.2 s
    finally:
        t.join(10)
        lsock.close()
    assert got and got[0][:1] == b"\x88"


def test_timer_cancelled_from_another_thread_does_not_keep_run_alive() -> None:
    with Loop() as loop:
        fired: List[str] = []

        def from_thread() -> None:
            h = loop.call_later(100, fired.append, "never")  # queued to the loop thread
            h.cancel()  # before the loop even pushed it
            loop.call_later(0.01, fired.append, "yes")

        def start() -> None:
            t = threading.Thread(target=from_thread)
            t.start()
            t.join(5)

        loop.call_soon(start)
        loop.run()  # returns: the cancelled timer does not count
        assert fired == ["yes"]
        assert loop._app_timers == 0


# --------------------------------------------------------------------------- slow consumers: the close frame


def _server_frames(data: bytes) -> List[Any]:
    """Every frame of a server's stream, parsed by hand: (b0, payload); fails on a cut one."""
    import struct

    frames: List[Any] = []
    pos = 0
    while pos < len(data):
        assert pos + 2 <= len(data), f"a header cut at {pos}"
        b0, b1 = data[pos], data[pos + 1]
        assert not b1 & 0x80, "a server frame is never masked"
        n, head = b1 & 0x7F, 2
        if n == 126:
            n, head = struct.unpack("!H", data[pos + 2 : pos + 4])[0], 4
        elif n == 127:
            n, head = struct.unpack("!Q", data[pos + 2 : pos + 10])[0], 10
        assert pos + head + n <= len(data), f"frame at {pos} cut: {len(data) - pos - head} of {n} bytes"
        frames.append((b0, data[pos + head : pos + head + n]))
        pos += head + n
    return frames


_MSG = 8192  # payload of each produced frame: a 4-byte sequence number and filler
_FRAME = _MSG + 4  # with its 16-bit-length header


class TestSlowConsumerCloseFrame:
    """A dropped slow consumer gets its close frame (1008/1013) behind the rest of the frame
    being written, the frames queued behind it are discarded, and TCP closes after a bounded
    linger even if the peer never reads: what the server buffers stays bounded throughout."""

    MAX_BUFFER = 256 * 1024

    def _loop(self, code: int, policy: Any) -> LoopThread:
        return LoopThread(Loop(high_water=64 * 1024, low_water=16 * 1024, slow_consumer=policy,
                               max_buffer=self.MAX_BUFFER, slow_consumer_timeout=None,
                               slow_consumer_code=code))

    def _producer(self, stats: Dict[str, Any]) -> Any:
        class Producer(Handler):
            """Ignores on_pause: sends numbered frames until the loop drops it."""

            def on_open(self, ws: WebSocket) -> None:
                sock = ws.transport.sock  # type: ignore[attr-defined]
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # a small kernel buffer
                stats["seq"] = 0
                stats["peak"] = 0
                self.tick(ws)

            def tick(self, ws: WebSocket) -> None:
                for _ in range(8):
                    if not ws.is_open:
                        return
                    i = stats["seq"]
                    ws.send_binary(i.to_bytes(4, "big") + b"y" * (_MSG - 4))
                    stats["seq"] = i + 1
                    stats["peak"] = max(stats["peak"], ws.transport.buffered)  # type: ignore[attr-defined]
                ws.call_later(0.001, lambda: self.tick(ws))

            def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
                stats["after_drop"] = ws.transport.buffered  # type: ignore[attr-defined]
                stats["closed"] = (ws.conn.close_code_sent, type(ws.error))

        return Producer

    @pytest.mark.parametrize("code,policy", [(1008, "drop"), (1013, "drop"), (1008, "callable")])
    def test_reader_that_resumes_gets_whole_frames_then_the_close_frame(
        self, code: int, policy: str, caplog: Any
    ) -> None:
        import logging

        caplog.set_level(logging.DEBUG, logger="wsfast.loop")
        asked: List[WebSocket] = []

        def decide(ws: WebSocket) -> bool:
            asked.append(ws)
            return True

        lt = self._loop(code, decide if policy == "callable" else policy)
        stats: Dict[str, Any] = {}
        with lt:
            server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, self._producer(stats), **FAST))
            s, rest = raw_handshake(server.port, rcvbuf=4096)
            with s:
                wait_for(lambda: lt.loop.dropped_slow_consumers == 1, timeout=20)
                data = rest + read_all(s)  # now read everything, to the server's EOF
            wait_for(lambda: "closed" in stats)
            wait_for(lambda: lt.call(lambda: lt.loop.open_connections) == 0)
        frames = _server_frames(data)  # no frame is cut
        *messages, last = frames
        assert last == (0x88, code.to_bytes(2, "big") + b"slow consumer")
        assert messages, "the frames the socket had taken come first"
        assert all(b0 == 0x82 for b0, _ in messages)
        # In order from the first, none missing, none cut: whole frames only; the last of
        # them may be the one the socket had begun when the consumer was dropped.
        assert [p for _, p in messages] == [i.to_bytes(4, "big") + b"y" * (_MSG - 4) for i in range(len(messages))]
        # The whole frames queued behind it were discarded, not sent.
        assert len(messages) < stats["seq"]
        assert stats["seq"] - len(messages) >= (self.MAX_BUFFER - 2 * _FRAME) // _FRAME
        assert stats["closed"] == (code, ConnectionClosedError)
        # Memory: never more than max_buffer and one frame; after the drop one frame and
        # the close frame at most.
        assert stats["peak"] <= self.MAX_BUFFER + _FRAME, stats
        assert stats["after_drop"] <= _FRAME + 2 + 2 + len(b"slow consumer"), stats
        assert lt.loop.bytes_buffered == 0
        if policy == "callable":
            assert len(asked) == 1
        # The case that matters happened: the socket had taken part of a frame (8 KiB frames
        # against a 4 KiB window), and that frame was completed before the close frame.
        notes = [r.getMessage() for r in caplog.records if "partly written" in r.getMessage()]
        kept = [int(m.split("kept ")[1].split()[0]) for m in notes]
        assert len(kept) == 1 and 0 < kept[0] < _FRAME, kept

    def test_cut_points_are_frame_boundaries(self) -> None:
        from wsfast.loop._loop import _unit_end

        from .test_loop_helpers import CLIENT_ENCODER

        head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        f1, f2, f3 = b"\x82\x03abc", b"\x81\x7e\x01\x00" + b"t" * 256, b"\x82\x00"
        data = head + f1 + f2 + f3
        ends = [len(head), len(head) + len(f1), len(head) + len(f1) + len(f2), len(data)]
        for offset in range(len(data)):
            assert _unit_end(data, offset) == min(e for e in ends if e > offset), offset
        masked = CLIENT_ENCODER.encode(0x82, b"m" * 300) + CLIENT_ENCODER.encode(0x81, b"x")
        req = b"GET / HTTP/1.1\r\n\r\n"
        assert _unit_end(req + masked, 5) == len(req)
        assert _unit_end(req + masked, len(req)) == len(req) + 8 + 300  # 16-bit length, masking key
        assert _unit_end(masked, 307) == 308 and _unit_end(masked, 308) == len(masked)
        assert _unit_end(f1 + b"\x82", 5) == -1  # a cut header cannot be measured
        assert _unit_end(b"HTTP/1.1 101", 3) == -1

    def test_tls_reader_that_resumes_gets_whole_frames_then_the_close_frame(self, tls: Any) -> None:
        # OpenSSL may hold a record of the first buffered frame that the socket has not
        # counted as sent, and wants it presented again: the cut keeps those bytes too.
        import ssl

        server_ctx, client_ctx = tls
        lt = self._loop(1008, "drop")
        stats: Dict[str, Any] = {}
        with lt:
            server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, self._producer(stats), ssl=server_ctx, **FAST))
            raw = raw_connect(server.port, rcvbuf=4096)
            s = client_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            with s:
                s.sendall(request_bytes(server.port))
                head, rest = read_head(s)
                assert head.startswith(b"HTTP/1.1 101"), head
                wait_for(lambda: lt.loop.dropped_slow_consumers == 1, timeout=20)
                data = rest
                while True:
                    try:
                        chunk = s.recv(65536)
                    except (ssl.SSLError, OSError):
                        break  # an abort instead of close_notify
                    if not chunk:
                        break
                    data += chunk
            wait_for(lambda: "closed" in stats)
        frames = _server_frames(data)
        *messages, last = frames
        assert last == (0x88, b"\x03\xf0slow consumer")
        assert [p for _, p in messages] == [i.to_bytes(4, "big") + b"y" * (_MSG - 4) for i in range(len(messages))]
        assert len(messages) < stats["seq"]
        assert stats["peak"] <= self.MAX_BUFFER + _FRAME, stats

    def test_flooding_peer_that_resumes_reading_still_gets_the_close_frame(self) -> None:
        # The peer keeps sending while it does not read: the server stops reading from it
        # (high_water), drops it after slow_consumer_timeout, and from then on reads and
        # discards its input, so that closing never meets unread input (which would reset
        # the connection and lose the close frame in flight).
        lt = LoopThread(Loop(high_water=64 * 1024, low_water=16 * 1024, slow_consumer="drop",
                             max_buffer=self.MAX_BUFFER, slow_consumer_timeout=0.2))
        class SmallEcho(Echo):
            def on_open(self, ws: WebSocket) -> None:
                # A small kernel buffer: what a 4 KiB window reads within the linger.
                ws.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # type: ignore[attr-defined]

        with lt:
            server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, SmallEcho, **dict(FAST, close_timeout=5.0)))
            s, rest = raw_handshake(server.port, rcvbuf=4096)
            stop = threading.Event()
            sent = [0]
            t = threading.Thread(target=_flood, args=(s, stop, sent))
            t.start()
            try:
                wait_for(lambda: lt.loop.dropped_slow_consumers == 1, timeout=20)
                received_at_drop = lt.call(lambda: lt.loop.bytes_received)
                time.sleep(0.1)  # the flood goes on into the drop
                s.setblocking(True)
                s.settimeout(5)
                data = rest + read_all(s)
            finally:
                stop.set()
                t.join(5)
                s.close()
            wait_for(lambda: lt.call(lambda: lt.loop.open_connections) == 0)
        *echoes, last = _server_frames(data)
        assert last == (0x88, b"\x03\xf0slow consumer")
        assert echoes and all(f == (0x82, b"x" * 16384) for f in echoes)
        assert lt.loop.bytes_received > received_at_drop  # its input was read (and dropped)

    def test_peer_that_never_reads_is_closed_after_the_linger(self) -> None:
        lt = self._loop(1008, "drop")
        stats: Dict[str, Any] = {}
        with lt:
            opts = dict(FAST, close_timeout=0.3)  # the linger of a dropped consumer
            server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, self._producer(stats), **opts))
            s, rest = raw_handshake(server.port, rcvbuf=4096)
            with s:
                wait_for(lambda: lt.loop.dropped_slow_consumers == 1, timeout=20)
                # The peer never reads: the socket is aborted after 0.3 s (well before the
                # 10 s linger of an ordinary close, or never).
                wait_for(lambda: lt.call(lambda: lt.loop.open_connections) == 0, timeout=5)
                assert lt.call(lambda: lt.loop.bytes_buffered) == 0
                assert stats["closed"] == (1008, ConnectionClosedError)
                assert stats["peak"] <= self.MAX_BUFFER + _FRAME, stats
                assert stats["after_drop"] <= _FRAME + 17, stats
                # What the kernel had taken still arrives, then the server's end of stream.
                s.settimeout(5)
                tail = rest + read_all(s)
            assert tail[:2] == b"\x82\x7e"  # frames from the first one
            assert lt.loop.timers < 50  # the linger timer is not left behind


# --------------------------------------------------------------------------- broadcast: prepared frames


def _client_frames(data: bytes) -> List[Tuple[int, bytes]]:
    """Split a loop client's output into (first byte, unmasked payload); none may be cut."""
    frames, pos = [], 0
    while pos < len(data):
        assert pos + 2 <= len(data), f"a header cut at {pos}"
        b0, b1 = data[pos], data[pos + 1]
        assert b1 & 0x80, "a client frame is always masked"
        n, head = b1 & 0x7F, 2
        if n == 126:
            n, head = struct.unpack("!H", data[pos + 2 : pos + 4])[0], 4
        elif n == 127:
            n, head = struct.unpack("!Q", data[pos + 2 : pos + 10])[0], 10
        key = data[pos + head : pos + head + 4]
        start = pos + head + 4
        assert start + n <= len(data), f"frame at {pos} cut"
        frames.append((b0, bytes(c ^ key[i % 4] for i, c in enumerate(data[start : start + n]))))
        pos = start + n
    return frames


def test_slow_consumer_drop_of_a_loop_client_sends_close_then_fin() -> None:
    """The loop's client side is the producer and the server stops reading: the dropped
    connection's close frame (1008) goes out behind whole frames, then FIN (the server reads
    EOF, not a reset or a timeout), within the linger."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited: a small window
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(10)
    port = lsock.getsockname()[1]
    stats: Dict[str, Any] = {}

    class Producer(Handler):
        def on_open(self, ws: WebSocket) -> None:
            ws.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # type: ignore[attr-defined]
            self.tick(ws)

        def tick(self, ws: WebSocket) -> None:
            for _ in range(8):
                if not ws.is_open:
                    return
                ws.send_binary(b"p" * 8192)
            ws.call_later(0.001, lambda: self.tick(ws))

        def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
            stats["closed"] = ws.conn.close_code_sent

    lt = LoopThread(Loop(high_water=64 * 1024, low_water=16 * 1024, slow_consumer="drop",
                         max_buffer=256 * 1024, slow_consumer_timeout=None))
    with lt, lsock:
        lt.call(lambda: lt.loop.connect(f"ws://127.0.0.1:{port}/", Producer(), compression=None, **FAST))
        s, _ = lsock.accept()
        with s:
            s.settimeout(10)
            head, rest = read_head(s)
            key = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n")
            wait_for(lambda: lt.loop.dropped_slow_consumers == 1, timeout=20)
            data = rest
            while True:  # to EOF: a timeout or a reset fails the test
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        wait_for(lambda: "closed" in stats)
        wait_for(lambda: lt.call(lambda: lt.loop.open_connections) == 0)
    *messages, last = _client_frames(data)
    assert last == (0x88, (1008).to_bytes(2, "big") + b"slow consumer")
    assert messages and all(f == (0x82, b"p" * 8192) for f in messages)
    assert stats["closed"] == 1008


class TestBroadcastPreparedFrame:
    def test_mix_of_deflate_and_plain_connections_each_get_the_right_messages(self) -> None:
        from wsfast.frames import prepare

        with Loop() as loop:
            server_side: List[WebSocket] = []
            server_got: List[Any] = []

            class S(Handler):
                def on_open(self, ws: WebSocket) -> None:
                    server_side.append(ws)

                def on_text(self, ws: WebSocket, data: str) -> None:
                    server_got.append((ws, data))

                def on_binary(self, ws: WebSocket, data: bytes) -> None:
                    server_got.append((ws, data))

            plain = loop.listen("127.0.0.1", 0, S, compression=None, **FAST)
            comp = loop.listen("127.0.0.1", 0, S, **FAST)
            recs = [Recorder() for _ in range(6)]
            for i, r in enumerate(recs):
                loop.connect((plain if i % 2 == 0 else comp).url, r, **FAST)
            run_until(loop, lambda: len(server_side) == 6 and all(r.opened.is_set() for r in recs))
            deflated = [ws for ws in server_side if ws.extensions == ("permessage-deflate",)]
            plain_ws = [ws for ws in server_side if ws.extensions == ()]
            assert len(deflated) == 3 and len(plain_ws) == 3

            written: Dict[int, List[bytes]] = {}
            for ws in server_side:
                orig = ws.transport.write

                def spy(chunks: List[bytes], orig: Any = orig, key: int = id(ws)) -> None:
                    written.setdefault(key, []).extend(chunks)
                    orig(chunks)

                ws.transport.write = spy  # type: ignore[method-assign]

            long = "compressible " * 100
            frame = prepare(long)
            short = prepare(b"\x00\x01tiny")  # below the deflate threshold: no transform
            assert loop.broadcast(frame, server_side) == 6
            assert loop.broadcast(short, server_side) == 6
            assert loop.broadcast("to everyone") == 12  # servers' and clients' sides
            run_until(loop, lambda: all(len(r.messages) == 3 for r in recs) and len(server_got) == 6)
            for r in recs:
                assert r.messages == [long, b"\x00\x01tiny", "to everyone"]
            assert sorted(data for _, data in server_got) == ["to everyone"] * 6
            for ws in plain_ws:
                out = written[id(ws)]
                assert out[0] is frame.data and out[1] is short.data  # the shared objects
            for ws in deflated:
                out = written[id(ws)]
                assert out[0] is not frame.data and out[0][0] == 0xC1  # FIN|RSV1|text
                assert len(b"".join(out[:-2])) < len(frame.data) // 4
                assert out[-2] is short.data
            assert loop.messages_sent >= 18
            for r in recs:
                assert r.ws is not None
                r.ws.close()
            run_until(loop, lambda: all(r.done.is_set() for r in recs))

    def test_module_broadcast_prepares_once_and_skips_closed(self) -> None:
        from wsfast.loop import broadcast

        with Loop() as loop:
            server_side: List[WebSocket] = []

            class S(Handler):
                def on_open(self, ws: WebSocket) -> None:
                    server_side.append(ws)

            server = loop.listen("127.0.0.1", 0, S, compression=None, **FAST)
            recs = [Recorder() for _ in range(3)]
            for r in recs:
                loop.connect(server.url, r, **FAST)
            run_until(loop, lambda: len(server_side) == 3 and all(r.opened.is_set() for r in recs))
            recs[0].ws.close()  # type: ignore[union-attr]
            run_until(loop, lambda: recs[0].done.is_set() and server_side[0].closed)
            assert broadcast(server_side, bytearray(b"abc")) == 2
            run_until(loop, lambda: all(r.messages == [b"abc"] for r in recs[1:]))
            assert recs[0].messages == []
            assert broadcast([], "nobody") == 0
            for r in recs[1:]:
                r.ws.close()  # type: ignore[union-attr]
            run_until(loop, lambda: all(r.done.is_set() for r in recs))
