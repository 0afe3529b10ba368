"""The three client modes of ``wsfast.clients`` over loopback: one handler class, run
unchanged under every mode (parametrized), against a small thread-per-connection server built
on the shared driver (``WebSocket`` + ``BlockingSocketTransport`` + ``blocking_step``).

Server paths: ``/echo`` (echo, and ``cmd:...`` text commands), ``/slow`` (every read waits
0.3 s, so the close is answered late), ``/deaf`` (after the handshake, reads and discards
everything: a close is never answered), ``/reject`` (403).
"""

from __future__ import annotations

import collections
import socket
import ssl
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import pytest

from wsfast._net import listen, listen_unix
from wsfast._options import ClientOptions, ServerOptions, new_server
from wsfast._sockio import BlockingSocketTransport, blocking_step
from wsfast.clients import (
    BackgroundClient,
    Binary,
    BlockingClient,
    Closed,
    Error,
    NonBlockingClient,
    Opened,
    PingReceived,
    PongReceived,
    Quit,
    Reconnect,
    Reconnecting,
    Text,
)
from wsfast.clients._mode import BACKGROUND, BLOCKING, NONBLOCKING
from wsfast.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectRefused,
    InvalidStatus,
    OpenTimeout,
    QueueFull,
)
from wsfast.handler import Accept, Handler, Reject, WebSocket

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_thread_leak")]

MiB = 1 << 20
BIG = 32 * MiB


# ---------------------------------------------------------------------------------- server


def _offered_protocols(request: Any) -> List[str]:
    return list(request.subprotocols)


class _ServerHandler(Handler):
    def __init__(self, server: Server) -> None:
        self.server = server

    def on_request(self, ws: WebSocket, request: Any) -> Any:
        path = request.path
        self.server.requests.append(request)
        ws.data["mode"] = path.strip("/") or "echo"
        if path == "/reject":
            return Reject(403, body=b"no")
        if "chat" in _offered_protocols(request):
            return Accept("chat")
        return None

    def on_open(self, ws: WebSocket) -> None:
        self.server.opened += 1

    def on_text(self, ws: WebSocket, data: str) -> None:
        self.server.texts.append(data)
        if data.startswith("cmd:"):
            self.command(ws, data[4:].split())
            return
        ws.send_text(data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        ws.send_binary(data)

    def command(self, ws: WebSocket, args: List[str]) -> None:
        name = args[0]
        if name == "ping":
            ws.ping(b"srv")
        elif name == "close":
            ws.close(int(args[1]), " ".join(args[2:]))
        elif name == "burst":
            n, size = int(args[1]), int(args[2])
            for i in range(n):
                ws.send_binary(i.to_bytes(4, "big") + b"x" * (size - 4))
        elif name == "say-close":  # a message and the close frame in one write
            conn = ws.conn
            conn.send_text(args[1])
            conn.close(4003, "after")
            ws.transport.write(conn.data_to_send())
        elif name == "partial":  # half a message, then a ping
            conn = ws.conn
            conn.send_text("first half ", fin=False)
            conn.send_ping(b"mid")
            ws.transport.write(conn.data_to_send())


class Server:
    """Thread-per-connection WebSocket server on the shared driver; ``close()`` ends it
    (open connections get 1001 first)."""

    def __init__(
        self,
        port: int = 0,
        ssl_context: Optional[ssl.SSLContext] = None,
        unix_path: Optional[str] = None,
        **options: Any,
    ) -> None:
        options.setdefault("max_size", BIG)
        options.setdefault("ping_interval", None)
        self.options = ServerOptions(**options)
        self.ssl_context = ssl_context
        self.lsock = listen_unix(unix_path) if unix_path else listen("127.0.0.1", port)[0]
        self.port = 0 if unix_path else self.lsock.getsockname()[1]
        self.requests: List[Any] = []
        self.texts: List[str] = []
        self.opened = 0
        self.stopping = threading.Event()
        self.threads: List[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def url(self, path: str = "/echo") -> str:
        scheme = "wss" if self.ssl_context else "ws"
        host = "localhost" if self.ssl_context else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}{path}"

    def _accept(self) -> None:
        self.lsock.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                sock, _ = self.lsock.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            sock.settimeout(5)
            try:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
            except OSError:
                sock.close()
                return
            sock.settimeout(None)
        o = self.options
        transport = BlockingSocketTransport(sock, 5.0)
        ws = WebSocket(
            new_server(o), _ServerHandler(self), transport, open_timeout=5, ping_interval=None, close_timeout=2,
            cross_thread="lock",
        )
        ws.start()
        closing = False
        try:
            while not ws.closed:
                if self.stopping.is_set() and not closing:
                    closing = True
                    if ws.is_open:
                        ws.close(1001, "going away")
                mode = ws.data.get("mode")
                if mode == "deaf" and ws.is_open:
                    sock.settimeout(0.05)
                    try:
                        if not sock.recv(65536):
                            break
                    except TimeoutError:
                        if self.stopping.is_set():
                            break
                    except OSError:
                        break
                    continue
                if mode == "slow" and ws.is_open:
                    time.sleep(0.3)
                if not blocking_step(ws, sock, 0.05):
                    break
        except Exception:
            pass
        finally:
            transport.release()

    def close(self) -> None:
        self.stopping.set()
        self.accepter.join(5)
        for t in self.threads:
            t.join(5)
        self.lsock.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@pytest.fixture
def server() -> Any:
    with Server() as s:
        yield s


class SilentListener:
    """Accepts TCP connections and never answers (an opening handshake that never ends)."""

    def __init__(self) -> None:
        self.lsock = listen("127.0.0.1", 0)[0]
        self.port = self.lsock.getsockname()[1]
        self.conns: List[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.lsock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                s, _ = self.lsock.accept()
                self.conns.append(s)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for s in self.conns:
            s.close()
        self.lsock.close()


# ---------------------------------------------------------------------------------- the handler


class Script(Handler):
    """The one handler every mode runs: sends ``messages`` (pipelined from ``on_open``, or one
    per echo with ``chain``), records every callback, closes once every echo is back.
    ``on`` maps a callback name to an extra action ``fn(handler, ws, arg)``."""

    def __init__(
        self,
        messages: Tuple[Any, ...] = (),
        *,
        chain: bool = False,
        close_when_done: bool = True,
        on: Optional[Dict[str, Callable[..., Any]]] = None,
    ) -> None:
        self.messages = list(messages)
        self.chain = chain
        self.close_when_done = close_when_done
        self.on = on or {}
        self.log: List[Tuple[Any, ...]] = []
        self.received: List[Any] = []
        self.sent = 0
        self.opens = 0
        self.closes: List[Tuple[int, str, bool]] = []
        self.errors: List[BaseException] = []
        self.threads: Set[int] = set()

    def _hook(self, name: str, ws: Any, arg: Any = None) -> None:
        self.threads.add(threading.get_ident())
        fn = self.on.get(name)
        if fn is not None:
            fn(self, ws, arg)

    def _send_next(self, ws: Any) -> None:
        msg = self.messages[self.sent]
        self.sent += 1
        ws.send(msg)

    def on_open(self, ws: Any) -> None:
        self.opens += 1
        self.received = []
        self.sent = 0
        self.log.append(("open", ws.subprotocol))
        self._hook("open", ws)
        if self.messages:
            if self.chain:
                self._send_next(ws)
            else:
                while self.sent < len(self.messages):
                    self._send_next(ws)
        elif self.close_when_done and "open" not in self.on:
            ws.close(1000, "done")

    def _message(self, ws: Any, data: Any) -> None:
        self.received.append(data)
        if len(self.received) == len(self.messages) and self.close_when_done:
            ws.close(1000, "done")
        elif self.chain and self.sent < len(self.messages):
            self._send_next(ws)

    def on_text(self, ws: Any, data: str) -> None:
        self._hook("text", ws, data)
        self._message(ws, data)

    def on_binary(self, ws: Any, data: bytes) -> None:
        self._hook("binary", ws, data)
        self._message(ws, data)

    def on_ping(self, ws: Any, payload: bytes) -> None:
        self.log.append(("ping", payload))
        self._hook("ping", ws, payload)

    def on_pong(self, ws: Any, payload: bytes) -> None:
        self.log.append(("pong", payload))
        self._hook("pong", ws, payload)

    def on_error(self, ws: Any, exc: BaseException) -> None:
        self.errors.append(exc)
        self.log.append(("error", type(exc).__name__))

    def on_close(self, ws: Any, code: int, reason: str, clean: bool) -> None:
        self.closes.append((code, reason, clean))
        self.log.append(("close", code, reason, clean))
        self._hook("close", ws, code)

    def on_idle(self, ws: Any) -> None:
        self._hook("idle", ws)


# ---------------------------------------------------------------------------------- running a mode

MODES = ["nonblocking", "nonblocking-1ms", "blocking", "background", "background-thread"]
_OPTION_NAMES = set(ClientOptions.__dataclass_fields__)


def run_mode(mode: str, uri: str, handler: Handler, **kw: Any) -> Any:
    """Run ``handler`` under ``mode`` until its last ``on_close``; return the client (or None)."""
    kw.setdefault("max_size", BIG)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 3)
    if mode == "nonblocking":
        c: Any = NonBlockingClient(uri, handler, **kw)
        c.run()
        return c
    if mode == "nonblocking-1ms":
        c = NonBlockingClient(uri, handler, spin_wait=0.001, **kw)
        c.run()
        return c
    if mode == "blocking":
        c = BlockingClient(uri, handler, **kw)
        c.run()
        return c
    if mode == "background-thread":
        c = BackgroundClient(uri, handler, **kw)
        c.start()
        assert c.join(30), "the IO thread did not finish"
        return c
    assert mode == "background"
    opts = {k: v for k, v in kw.items() if k in _OPTION_NAMES}
    extra = {k: v for k, v in kw.items() if k not in _OPTION_NAMES}
    BACKGROUND.configure(**extra).run_client(uri, handler, ClientOptions(**opts))
    return None


def payload(size: int, binary: bool) -> Any:
    if binary:
        return bytes((i * 31 + 7) & 0xFF for i in range(min(size, 4096))) * (size // 4096) + bytes(
            (i * 31 + 7) & 0xFF for i in range(size % 4096)
        )
    return ("wsfast é€😀 " * (size // 20 + 1)).encode()[:size].decode(errors="ignore")


# ---------------------------------------------------------------------------------- tests


def test_modes_are_client_only() -> None:
    assert (NONBLOCKING.name, BLOCKING.name, BACKGROUND.name) == ("nonblocking", "blocking-handler", "background")
    for m in (NONBLOCKING, BLOCKING, BACKGROUND):
        assert m.has_server is False and m.description
        with pytest.raises(NotImplementedError):
            m.run_server("127.0.0.1", 0, Handler, ServerOptions(), lambda url: None)
    assert NONBLOCKING.configure(spin_wait=0.01).kwargs == {"spin_wait": 0.01}


@pytest.mark.parametrize("mode", MODES)
def test_echo_size_classes(server: Server, mode: str) -> None:
    sizes = [0, 1, 125, 126, 65535, 65536, 1 * MiB]
    msgs = [payload(s, b) for s in sizes for b in (False, True)]
    h = Script(tuple(msgs))
    run_mode(mode, server.url(), h, compression=None)
    assert h.received == msgs
    assert h.closes == [(1000, "", True)]
    assert h.errors == []


@pytest.mark.parametrize("mode", MODES)
def test_echo_16mib_compressed_and_chained(server: Server, mode: str) -> None:
    msgs = [payload(16 * MiB, True), payload(1000, False), payload(3, True)]
    h = Script(tuple(msgs), chain=True)
    run_mode(mode, server.url(), h)
    assert [len(m) for m in h.received] == [len(m) for m in msgs]
    assert h.received == msgs
    assert h.closes == [(1000, "", True)]


@pytest.mark.parametrize("mode", MODES)
def test_ping_pong_callbacks(server: Server, mode: str) -> None:
    def opened(h: Script, ws: Any, _: Any) -> None:
        ws.ping(b"cli")
        ws.send_text("cmd:ping")

    def ponged(h: Script, ws: Any, payload: bytes) -> None:
        if ("ping", b"srv") in h.log:
            ws.close(1000, "done")

    def pinged(h: Script, ws: Any, payload: bytes) -> None:
        if ("pong", b"cli") in h.log:
            ws.close(1000, "done")

    h = Script(on={"open": opened, "pong": ponged, "ping": pinged})
    run_mode(mode, server.url(), h)
    assert ("pong", b"cli") in h.log and ("ping", b"srv") in h.log
    assert h.closes == [(1000, "", True)]


@pytest.mark.parametrize("mode", MODES)
def test_server_close_and_callbacks_on_one_thread(server: Server, mode: str) -> None:
    h = Script(on={"open": lambda h, ws, _: ws.send_text("cmd:close 4000 bye now")})
    run_mode(mode, server.url(), h)
    assert h.closes == [(4000, "bye now", True)]
    assert len(h.threads) == 1


@pytest.mark.parametrize("mode", MODES)
def test_force_quit_mid_message(server: Server, mode: str) -> None:
    h = Script(
        on={
            "open": lambda h, ws, _: ws.send_text("cmd:partial"),
            "ping": lambda h, ws, p: ws.force_quit(),
        }
    )
    run_mode(mode, server.url(), h)
    assert ("ping", b"mid") in h.log
    assert h.received == []
    assert h.closes == [(1006, "", False)]


@pytest.mark.parametrize("mode", MODES)
def test_graceful_close_slow_server(server: Server, mode: str) -> None:
    h = Script(("a", b"b"))
    run_mode(mode, server.url("/slow"), h, close_timeout=5)
    assert h.received == ["a", b"b"]
    assert h.closes == [(1000, "", True)]


@pytest.mark.parametrize("mode", MODES)
def test_close_timeout_when_server_never_answers(server: Server, mode: str) -> None:
    h = Script()  # closes in on_open
    t0 = time.monotonic()
    run_mode(mode, server.url("/deaf"), h, close_timeout=0.3)
    assert h.closes == [(1006, "", False)]
    assert time.monotonic() - t0 < 20  # bounded (the close timeout fired), not a timing check


@pytest.mark.parametrize("mode", MODES)
def test_keepalive_pong_timeout(server: Server, mode: str) -> None:
    h = Script(close_when_done=False, on={"open": lambda h, ws, _: None})
    run_mode(mode, server.url("/deaf"), h, ping_interval=0.1, ping_timeout=0.2, close_timeout=0.3)
    assert any(isinstance(e, ConnectionClosedError) for e in h.errors)
    assert h.closes == [(1006, "", False)]


@pytest.mark.parametrize("mode", MODES)
def test_headers_subprotocols_compression(server: Server, mode: str) -> None:
    seen: Dict[str, Any] = {}
    h = Script(
        ("x" * 5000,),
        on={"open": lambda h, ws, _: seen.update(sub=ws.subprotocol, ext=ws.extensions)},
    )
    run_mode(mode, server.url(), h, headers=[("X-Test", "yes")], subprotocols=["chat"], compression="deflate")
    req = server.requests[0]
    headers = {k.lower(): v for k, v in req.headers}
    assert headers["x-test"] == "yes"
    assert seen == {"sub": "chat", "ext": ("permessage-deflate",)}
    assert h.received == ["x" * 5000]


@pytest.mark.parametrize("mode", MODES)
def test_tls(tls: Tuple[ssl.SSLContext, ssl.SSLContext], mode: str) -> None:
    server_ctx, client_ctx = tls
    with Server(ssl_context=server_ctx) as srv:
        msgs = ("hello", payload(300_000, True))
        h = Script(msgs)
        run_mode(mode, srv.url(), h, ssl=client_ctx)
        assert h.received == list(msgs)
        assert h.closes == [(1000, "", True)]


@pytest.mark.parametrize("mode", MODES)
def test_tls_unverified_certificate_is_tls_error(tls: Tuple[ssl.SSLContext, ssl.SSLContext], mode: str) -> None:
    from wsfast.exceptions import TLSError

    with Server(ssl_context=tls[0]) as srv:
        h = Script(("x",))
        run_mode(mode, srv.url(), h, ssl=ssl.create_default_context())
        assert [type(e) for e in h.errors] == [TLSError]
        assert h.closes == [(1006, "", False)]


@pytest.mark.parametrize("mode", MODES)
def test_errors_are_typed(server: Server, mode: str) -> None:
    h = Script(("x",))
    run_mode(mode, server.url("/reject"), h)
    assert [type(e) for e in h.errors] == [InvalidStatus] and h.errors[0].status == 403  # type: ignore[attr-defined]
    assert h.closes and h.closes[-1][0] == 1006
    free = listen("127.0.0.1", 0)[0]
    port = free.getsockname()[1]
    free.close()
    h = Script(("x",))
    run_mode(mode, f"ws://127.0.0.1:{port}/", h)
    assert [type(e) for e in h.errors] == [ConnectRefused]
    assert h.closes == [(1006, "", False)]


@pytest.mark.parametrize("mode", MODES)
def test_open_timeout(mode: str) -> None:
    silent = SilentListener()
    try:
        h = Script(("x",))
        run_mode(mode, f"ws://127.0.0.1:{silent.port}/", h, open_timeout=0.3)
        assert [type(e) for e in h.errors] == [OpenTimeout]
        assert h.closes == [(1006, "", False)]
    finally:
        silent.close()


@pytest.mark.parametrize("mode", ["nonblocking", "blocking", "background-thread"])
def test_socket_hook_options_and_connect_first(server: Server, mode: str) -> None:
    hooked: List[socket.socket] = []
    h = Script(("x",))
    classes = {"nonblocking": NonBlockingClient, "blocking": BlockingClient, "background-thread": BackgroundClient}
    cls: Any = classes[mode]
    c = cls(
        server.url(), h, on_socket=hooked.append,
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)],
    )
    sock = c.connect()
    assert c.socket is sock and hooked == [sock]
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 65536
    if mode == "background-thread":
        c.start()
        assert c.join(20)
    else:
        c.run()
    assert h.received == ["x"] and h.closes == [(1000, "", True)]


@pytest.mark.parametrize("mode", ["nonblocking", "blocking", "background-thread"])
def test_nodelay_off(server: Server, mode: str) -> None:
    hooked: List[int] = []
    h = Script(("x",))
    run_mode(
        mode, server.url(), h, nodelay=False,
        on_socket=lambda s: hooked.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)),
    )
    assert hooked == [0] and h.received == ["x"]


# ---------------------------------------------------------------------------------- reconnect


@pytest.mark.parametrize("mode", MODES)
def test_reconnect_against_a_restarting_server(mode: str) -> None:
    srv = Server()
    port = srv.port
    restarted: List[Server] = []
    attempts: List[Tuple[int, Any]] = []

    def opened(h: Script, ws: Any, _: Any) -> None:
        if h.opens == 1:
            ws.send_text("first")
        else:
            ws.send_text("second")

    def got(h: Script, ws: Any, data: str) -> None:
        if data == "first":
            threading.Thread(target=srv.close).start()  # the server goes away (1001)...
        else:
            ws.close(1000, "done")  # deliberate: no further reconnect

    def before(attempt: int, delay: float, error: Any) -> None:
        attempts.append((attempt, error))
        if not restarted:
            srv.stopping.wait(5)
            srv.accepter.join(5)
            srv.lsock.close()
            deadline = time.monotonic() + 5
            while True:  # ...and comes back on the same port (its old sockets may still be closing)
                try:
                    restarted.append(Server(port=port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    h = Script(close_when_done=False, on={"open": opened, "text": got})
    policy = Reconnect(initial_delay=0.05, max_delay=0.2, before_attempt=before)
    try:
        run_mode(mode, f"ws://127.0.0.1:{port}/echo", h, reconnect=policy)
    finally:
        srv.close()
        for s in restarted:
            s.close()
    assert h.opens == 2
    assert h.closes[0][:2] == (1001, "going away") and h.closes[-1] == (1000, "", True)
    assert attempts and attempts[0][0] == 1


@pytest.mark.parametrize("mode", MODES)
def test_reconnect_gives_up_after_max_attempts(mode: str) -> None:
    free = listen("127.0.0.1", 0)[0]
    port = free.getsockname()[1]
    free.close()
    calls: List[int] = []
    h = Script(("x",))
    policy = Reconnect(
        initial_delay=0.01, max_delay=0.02, max_attempts=3, before_attempt=lambda a, d, e: calls.append(a)
    )
    run_mode(mode, f"ws://127.0.0.1:{port}/", h, reconnect=policy)
    assert calls == [1, 2, 3]
    assert [type(e) for e in h.errors] == [ConnectRefused] * 4
    assert len(h.closes) == 4


@pytest.mark.parametrize("mode", MODES)
def test_no_reconnect_after_deliberate_close_or_4xx(server: Server, mode: str) -> None:
    calls: List[int] = []
    policy = Reconnect(initial_delay=0.01, before_attempt=lambda a, d, e: calls.append(a))
    h = Script(("x",))
    run_mode(mode, server.url(), h, reconnect=policy)
    h2 = Script(on={"open": lambda h, ws, _: ws.force_quit()})
    run_mode(mode, server.url(), h2, reconnect=policy)
    h3 = Script(("x",))
    run_mode(mode, server.url("/reject"), h3, reconnect=policy)
    assert calls == []
    assert h.closes == [(1000, "", True)] and h2.closes == [(1006, "", False)]
    assert server.opened == 2


def test_backoff_has_cap_and_jitter() -> None:
    import random

    p = Reconnect(initial_delay=1, max_delay=8, factor=2, jitter=0.5)
    rnd = random.Random(1)
    delays = [p.delay(n, rnd) for n in range(1, 8)]
    caps = [min(8, 2 ** (n - 1)) for n in range(1, 8)]
    assert all(0.5 * cap <= d <= cap for cap, d in zip(caps, delays, strict=True))
    assert Reconnect(jitter=0).delay(3, rnd) == 2.0


# ---------------------------------------------------------------------------------- non-blocking spin


def test_busy_poll_never_sleeps(server: Server) -> None:
    h = Script(tuple(f"m{i}" for i in range(200)), chain=True)
    c = NonBlockingClient(server.url(), h, ping_interval=None)
    c.run()
    assert len(h.received) == 200
    assert c.sleeps == 0 and c.iterations > 0


def test_spin_wait_sleeps_only_after_an_idle_iteration(server: Server) -> None:
    """Every sleep follows an ``on_idle`` that found nothing to do, called after the last
    read and the last send; ``on_idle`` that sends is never followed by a sleep."""
    state = {"dirty": False, "idle_sends": 0, "bad": 0, "sleeps": 0}

    def dirty(h: Script, ws: Any, _: Any) -> None:
        state["dirty"] = True

    def idle(h: Script, ws: Any, _: Any) -> None:
        if state["idle_sends"] < 20 and len(h.received) >= 50:
            state["idle_sends"] += 1
            ws.send_text("cmd:noop")  # a send from on_idle: no sleep may follow it directly
            state["dirty"] = True
            return
        state["dirty"] = False

    def fake_sleep(t: float) -> None:
        state["sleeps"] += 1
        if state["dirty"]:
            state["bad"] += 1
        time.sleep(min(t, 0.002))

    h = Script(tuple(f"m{i}" for i in range(100)), chain=True, on={"text": dirty, "idle": idle})
    c = NonBlockingClient(server.url(), h, spin_wait=0.002, ping_interval=None)
    c._sleep = fake_sleep  # type: ignore[assignment]
    c.run()
    assert len(h.received) == 100 and h.closes == [(1000, "", True)]
    assert state["idle_sends"] == 20
    assert state["bad"] == 0
    assert c.sleeps == state["sleeps"] > 0


def test_nonblocking_cross_thread_commands(server: Server) -> None:
    got: List[str] = []
    opened = threading.Event()
    on = {"open": lambda h, ws, _: opened.set(), "text": lambda h, ws, d: got.append(d)}
    h = Script(close_when_done=False, on=on)
    c = NonBlockingClient(server.url(), h, spin_wait=0.001)

    def other() -> None:
        assert opened.wait(10)
        for i in range(100):
            c.send_text(f"t{i}")
        c.close()

    t = threading.Thread(target=other)
    t.start()
    c.run()
    t.join(10)
    assert got == [f"t{i}" for i in range(100)]
    assert h.closes == [(1000, "", True)]


def test_blocking_cross_thread_commands_and_write_timeout(server: Server) -> None:
    got: List[str] = []
    opened = threading.Event()
    on = {"open": lambda h, ws, _: opened.set(), "text": lambda h, ws, d: got.append(d)}
    h = Script(close_when_done=False, on=on)
    c = BlockingClient(server.url(), h, write_timeout=5, read_timeout=0.5)

    def other() -> None:
        assert opened.wait(10)
        for i in range(100):
            c.send_text(f"t{i}")
        c.close(4001, "bye")

    t = threading.Thread(target=other)
    t.start()
    c.run()
    t.join(10)
    assert got == [f"t{i}" for i in range(100)]
    assert h.closes == [(4001, "", True)]


# ---------------------------------------------------------------------------------- background


def _drain(client: BackgroundClient, timeout: float = 20) -> List[Any]:
    out = []
    end = time.monotonic() + timeout
    while True:
        ev = client.events.get(timeout=max(end - time.monotonic(), 0.01))
        out.append(ev)
        if isinstance(ev, Quit):
            return out


def test_background_events_and_commands(server: Server) -> None:
    c = BackgroundClient(server.url(), subprotocols=["chat"], max_size=BIG)
    assert c.start() is c
    first = c.events.get(timeout=10)
    assert isinstance(first, Opened) and first.subprotocol == "chat" and first.ws is c.ws
    c.send_text("hi")
    c.send_binary(bytearray(b"\x00\x01"))
    c.send(["frag", "mented"])
    c.ping(b"p1")
    c.send_text("cmd:ping")
    seen = [c.events.get(timeout=10) for _ in range(5)]
    c.close(1000, "bye")
    rest = _drain(c)
    assert c.join(10)
    data = [e for e in seen if hasattr(e, "data")]
    assert data == [Text("hi"), Binary(b"\x00\x01"), Text("fragmented")]  # in order
    control = [e for e in seen if not hasattr(e, "data")]  # auto-pongs may overtake echoes
    assert sorted(map(repr, control)) == [repr(PingReceived(b"srv")), repr(PongReceived(b"p1"))]
    assert rest[-2:] == [Closed(1000, "", True), Quit()]
    with pytest.raises(ConnectionClosed):
        c.send_text("late")


def test_background_iteration_ends_at_quit(server: Server) -> None:
    c = BackgroundClient(server.url())
    c.start()
    out = []
    for ev in c.events:
        out.append(ev)
        if isinstance(ev, Opened):
            c.send_text("cmd:close 4002 x")
    assert c.join(10)
    assert [type(e) for e in out] == [Opened, Closed] and out[-1] == Closed(4002, "x", True)


def test_background_8_threads_no_interleaving_nothing_lost(server: Server) -> None:
    c = BackgroundClient(server.url(), send_timeout=None, queue_size=64, compression=None)
    c.start()
    assert isinstance(c.events.get(timeout=10), Opened)
    per_thread = 300
    errors: List[BaseException] = []

    def sender(k: int) -> None:
        try:
            for i in range(per_thread):
                if i % 2:
                    c.send_text(f"{k}:{i}:" + "t" * (i % 50))
                else:
                    c.send_binary(f"{k}:{i}:".encode() + bytes(i % 300))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    c.close()
    evs = _drain(c)
    assert c.join(10)
    assert errors == []
    msgs = [e.data for e in evs if hasattr(e, "data")]
    assert len(msgs) == 8 * per_thread
    order: Dict[int, List[int]] = collections.defaultdict(list)
    for m in msgs:
        raw = m.encode() if isinstance(m, str) else m
        k, i, rest = raw.split(b":", 2)
        expect = b"t" * (int(i) % 50) if isinstance(m, str) else bytes(int(i) % 300)
        assert rest == expect  # whole, not interleaved with another message
        order[int(k)].append(int(i))
    assert all(order[k] == list(range(per_thread)) for k in range(8))
    assert evs[-2:] == [Closed(1000, "", True), Quit()]


def test_background_command_queue_full_raises_or_waits() -> None:
    silent = SilentListener()
    c = BackgroundClient(f"ws://127.0.0.1:{silent.port}/", queue_size=4, open_timeout=10)
    try:
        c.start()
        for i in range(4):
            c.send_text(str(i))  # held until the handshake completes (it never does)
        with pytest.raises(QueueFull):
            c.send_text("5")
        c.send_timeout = 0.1
        with pytest.raises(QueueFull):
            c.send_text("5")
        c.force_quit()
        evs = _drain(c)
        assert [type(e) for e in evs] == [Closed, Quit]
        assert c.join(10)
    finally:
        silent.close()


def test_background_full_event_queue_stops_reading_and_loses_nothing(server: Server) -> None:
    n, size = 3000, 1024
    c = BackgroundClient(server.url(), event_queue_size=16, compression=None)
    c.start()
    assert isinstance(c.events.get(timeout=10), Opened)
    c.send_text(f"cmd:burst {n} {size}")
    end = time.monotonic() + 10
    while not c.events.paused and time.monotonic() < end:
        time.sleep(0.01)
    assert c.events.paused
    time.sleep(0.2)
    assert len(c.events) == 16  # exactly the bound: the rest waits in the engine and the socket
    got: List[bytes] = []
    while len(got) < n:
        ev = c.events.get(timeout=10)
        got.append(ev.data)  # type: ignore[attr-defined]
    assert [int.from_bytes(d[:4], "big") for d in got] == list(range(n))
    c.close()
    evs = _drain(c)
    assert evs[-2:] == [Closed(1000, "", True), Quit()]
    assert c.join(10)


def test_background_force_quit_during_reconnect_wait() -> None:
    free = listen("127.0.0.1", 0)[0]
    port = free.getsockname()[1]
    free.close()
    c = BackgroundClient(f"ws://127.0.0.1:{port}/", reconnect=Reconnect(initial_delay=30, jitter=0))
    c.start()
    evs = [c.events.get(timeout=10) for _ in range(3)]
    assert [type(e) for e in evs] == [Error, Closed, Reconnecting]
    assert isinstance(evs[0].exc, ConnectRefused)  # type: ignore[attr-defined]
    c.force_quit()
    assert isinstance(c.events.get(timeout=10), Quit)
    assert c.join(5)


def test_background_context_manager(server: Server) -> None:
    with BackgroundClient(server.url()) as c:
        assert isinstance(c.events.get(timeout=10), Opened)
        c.send_text("x")
        assert c.events.get(timeout=10) == Text("x")
    assert c.closed
    evs = _drain(c, 5)
    assert evs[-2:] == [Closed(1000, "", True), Quit()]


# ---------------------------------------------------------------------------------- interop


@pytest.mark.parametrize("secure", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_interop_websockets_server(tls: Tuple[ssl.SSLContext, ssl.SSLContext], mode: str, secure: bool) -> None:
    peers = pytest.importorskip("tests.interop.peers")
    kwargs = {"ssl": tls[0]} if secure else {}
    with peers.WebsocketsServer(**kwargs) as srv:
        scheme, host = ("wss", "localhost") if secure else ("ws", "127.0.0.1")
        msgs = ("", "hello é", b"\x00" * 70000, peers.text_payload(100_000), peers.binary_payload(1 << 20))
        h = Script(msgs)
        kw: Dict[str, Any] = {"ssl": tls[1]} if secure else {}
        run_mode(mode, f"{scheme}://{host}:{srv.port}/", h, max_size=peers.MAX_SIZE, **kw)
        assert h.received == list(msgs)
        assert [(c, clean) for c, _, clean in h.closes] == [(1000, True)]  # websockets echoes the reason
        rec = srv.record(0)
        assert rec["error"] is None and "permessage-deflate" in (rec["response"] or "")


_NODE_TLS_SERVER = r"""
'use strict';
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');
const [cert, key] = [fs.readFileSync(process.argv[2]), fs.readFileSync(process.argv[3])];
const server = https.createServer({ cert, key });
const wss = new WebSocketServer({ server, perMessageDeflate: true, maxPayload: 64 * 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 60000);
"""


@pytest.fixture(scope="module")
def node_tls_server(tmp_path_factory: Any, node: str) -> Any:
    """A Node ``ws`` echo server over TLS (https + ws), certificate from a fresh trustme CA."""
    import json
    import pathlib
    import subprocess

    trustme = pytest.importorskip("trustme")
    interop = pathlib.Path(__file__).resolve().parent.parent / "interop"
    from tests.interop.peers import _kill_group

    d = tmp_path_factory.mktemp("node_tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(d / "cert.pem"), append=True)
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    script = d / "server.js"
    script.write_text(_NODE_TLS_SERVER)
    env = {**__import__("os").environ, "NODE_PATH": str(interop / "node_modules")}
    proc = subprocess.Popen(
        [node, str(script), str(d / "cert.pem"), str(d / "key.pem")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        box: List[bytes] = []
        reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(15)
        if not box or not box[0]:
            err = proc.stderr.read(2000) if proc.stderr is not None and proc.poll() is not None else b""
            pytest.fail(f"node TLS server did not start: {err!r}")
        port = json.loads(box[0])["port"]
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        yield port, client_ctx
    finally:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        _kill_group(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.parametrize("mode", MODES)
def test_interop_node_ws_tls(node_tls_server: Tuple[int, ssl.SSLContext], mode: str) -> None:
    port, ctx = node_tls_server
    msgs = ("", "hello é€", payload(100_000, False), payload(1 << 20, True), payload(3 * MiB, True))
    h = Script(msgs)
    seen: Dict[str, Any] = {}
    h.on["open"] = lambda h, ws, _: seen.update(ext=ws.extensions)
    run_mode(mode, f"wss://localhost:{port}/", h, ssl=ctx)
    assert h.received == list(msgs)
    assert [(c, clean) for c, _, clean in h.closes] == [(1000, True)]
    assert seen["ext"] == ("permessage-deflate",)


@pytest.mark.parametrize("mode", MODES)
def test_answers_go_out_before_the_close_reply(server: Server, mode: str) -> None:
    """A message and the peer's close arrive together: the handler's answer to the message
    leaves before the close is echoed (the background mode holds the close back until the
    caller's thread handled the message: ``answer_before_close``)."""
    h = Script(
        close_when_done=False,
        on={
            "open": lambda h, ws, _: ws.send_text("cmd:say-close last"),
            "text": lambda h, ws, d: ws.send_text("answer:" + d),
        },
    )
    run_mode(mode, server.url(), h)
    assert h.received == ["last"] and h.errors == []
    assert h.closes == [(4003, "after", True)]
    assert server.texts == ["cmd:say-close last", "answer:last"]


@pytest.mark.parametrize("mode", MODES)
def test_unix_socket(tmp_path: Any, mode: str) -> None:
    path = f"/tmp/wsfast-clients-{id(tmp_path) & 0xFFFFFF:x}-{mode}.sock"
    try:
        with Server(unix_path=path) as srv:
            h = Script(("over unix", b"\x01" * 70000))
            run_mode(mode, "ws://localhost/echo", h, unix_path=path)
            assert h.received == ["over unix", b"\x01" * 70000]
            assert h.closes == [(1000, "", True)] and srv.opened == 1
    finally:
        import os

        if os.path.exists(path):
            os.unlink(path)


# ------------------------------------------------- background: answers before a later close


class _RawPeer:
    """A hand-written WebSocket server on one loopback connection, for byte-exact scripts.

    It answers the handshake (no extension), writes ``writes`` one ``sendall`` each with
    ``gap`` seconds between them, then records every frame the client sends, unmasked, as
    ``(first byte, payload)``, until the client's close frame: it echoes that and closes TCP
    (``echo_close``), or only waits for the client to close TCP. ``shut``: close its sending
    side right after the writes (EOF for the client)."""

    def __init__(self, writes: List[bytes], gap: float = 0.1, echo_close: bool = True, shut: bool = False) -> None:
        self.writes = writes
        self.gap = gap
        self.echo_close = echo_close
        self.shut = shut
        self.frames: List[Tuple[int, bytes]] = []
        self.error: Optional[BaseException] = None
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, name="raw-peer", daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def _recv_exact(self, conn: socket.socket, buf: bytearray, n: int) -> bytes:
        while len(buf) < n:
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError(f"EOF with {len(buf)} of {n} bytes")
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _run(self) -> None:
        import base64
        import hashlib

        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(10)
                buf = bytearray()
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        raise EOFError("EOF in the handshake")
                    buf += chunk
                head, _, rest = bytes(buf).partition(b"\r\n\r\n")
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n\r\n"
                )
                buf = bytearray(rest)
                for i, chunk in enumerate(self.writes):
                    if i:
                        time.sleep(self.gap)
                    conn.sendall(chunk)
                if self.shut:
                    conn.shutdown(socket.SHUT_WR)
                while True:
                    try:
                        b0, b1 = self._recv_exact(conn, buf, 2)
                    except EOFError:
                        if self.shut and not buf:
                            return  # the client closed TCP without a close frame
                        raise
                    assert b1 & 0x80, "client frames are masked"
                    n = b1 & 0x7F
                    if n == 126:
                        n = int.from_bytes(self._recv_exact(conn, buf, 2), "big")
                    elif n == 127:
                        n = int.from_bytes(self._recv_exact(conn, buf, 8), "big")
                    mask = self._recv_exact(conn, buf, 4)
                    data = bytes(c ^ mask[j % 4] for j, c in enumerate(self._recv_exact(conn, buf, n)))
                    self.frames.append((b0, data))
                    if b0 & 0x0F == 0x8:
                        break
                if self.shut:
                    conn.recv(65536)
                elif self.echo_close:
                    conn.sendall(bytes([0x88, len(data)]) + data)
                else:
                    conn.recv(65536)  # the client closes TCP (after its close timeout)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.sock.close()

    def join(self) -> None:
        self.thread.join(10)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


_HELLO = b"\x81\x05hello"
#: What the peer sends after the message: (frame, the client's close code, Closed.code).
_TRAILERS = {
    # Failed with 1002; Closed has the peer's code, and after a failure the peer's input
    # (its close echo) is discarded: 1006, not clean (``ws.conn.close_code_sent`` is 1002).
    "rsv1": (b"\xc1\x01x", 1002, 1006),  # RSV1 without an extension that defines it
    "opcode": (b"\x83\x00", 1002, 1006),  # reserved data opcode 3
    "close": (b"\x88\x02\x03\xe8", 1000, 1000),  # the peer's close, 1000
}


def _closes_last(frames: List[Tuple[int, bytes]]) -> List[Tuple[int, Any]]:
    """The frames, the close frame's payload as its code (its reason must be UTF-8)."""
    out: List[Tuple[int, Any]] = list(frames[:-1])
    b0, data = frames[-1]
    data[2:].decode()
    out.append((b0, int.from_bytes(data[:2], "big")))
    return out


class TestBackgroundAnswersBeforeLaterClose:
    """The peer's close or a protocol violation arrives in a later socket read than a message
    the application answers from its own thread (slowly): the answer leaves first, then the
    close frame (strict Autobahn 3.x/4.x/5.15 order), and the close is not held longer than
    ``close_timeout`` by an application that stopped reading events."""

    @pytest.mark.parametrize("split", ["later", "together"])
    @pytest.mark.parametrize("trailer", sorted(_TRAILERS))
    @pytest.mark.parametrize("how", ["iterate", "get", "task_done"])
    def test_answer_goes_out_before_the_close(self, trailer: str, split: str, how: str) -> None:
        frame, sent_code, closed_code = _TRAILERS[trailer]
        writes = [_HELLO, frame] if split == "later" else [_HELLO + frame]
        peer = _RawPeer(writes, gap=0.05)
        c = BackgroundClient(peer.url(), close_timeout=5, answer_before_close=how == "task_done")
        c.start()
        seen: List[Any] = []

        def handle(ev: Any) -> None:
            seen.append(ev)
            if isinstance(ev, Text):
                time.sleep(0.25)  # the close is in the engine by now
                ev.ws.send_text("echo:" + ev.data)

        if how == "iterate":
            for ev in c.events:
                handle(ev)
        else:
            while True:
                ev = c.events.get(timeout=10)
                if isinstance(ev, Quit):
                    break
                handle(ev)
                if how == "task_done":
                    c.events.task_done()
        assert c.join(10)
        peer.join()
        assert _closes_last(peer.frames) == [(0x81, b"echo:hello"), (0x88, sent_code)]
        kinds = [type(e) for e in seen]
        if sent_code == 1002:
            assert kinds == [Opened, Text, Error, Closed]
            assert type(seen[2].exc).__name__ == "ProtocolError"
        else:
            assert kinds == [Opened, Text, Closed]
        assert seen[1] == Text("hello")
        assert seen[-1].code == closed_code and seen[-1].clean == (sent_code == 1000)
        assert seen[-1].ws.conn.close_code_sent == sent_code

    @pytest.mark.parametrize("trailer", ["rsv1", "close"])
    def test_two_messages_then_close_in_the_read_after(self, trailer: str) -> None:
        """Several events in flight: the close waits for the answers to all of them."""
        frame, sent_code, _ = _TRAILERS[trailer]
        peer = _RawPeer([_HELLO + b"\x81\x02hi", frame], gap=0.05)
        c = BackgroundClient(peer.url(), close_timeout=5)
        c.start()
        for ev in c.events:
            if isinstance(ev, Text):
                time.sleep(0.1)
                c.send_text("echo:" + ev.data)
        assert c.join(10)
        peer.join()
        assert _closes_last(peer.frames) == [(0x81, b"echo:hello"), (0x81, b"echo:hi"), (0x88, sent_code)]

    @pytest.mark.parametrize("trailer", ["rsv1", "close"])
    def test_stuck_application_does_not_hold_past_close_timeout(self, trailer: str) -> None:
        """The application takes the message and never comes back: after ``close_timeout``
        the close frame goes out anyway and the connection ends (the events wait in the
        queue for whoever reads them)."""
        frame, sent_code, closed_code = _TRAILERS[trailer]
        peer = _RawPeer([_HELLO, frame], gap=0.05)
        c = BackgroundClient(peer.url(), close_timeout=0.5)
        c.start()
        assert isinstance(c.events.get(timeout=10), Opened)
        assert c.events.get(timeout=10) == Text("hello")
        # ... and handles it forever: no further get().
        assert c.join(5)
        peer.join()
        assert _closes_last(peer.frames) == [(0x88, sent_code)]
        rest = _drain(c)
        assert [type(e) for e in rest] == ([Error] if sent_code == 1002 else []) + [Closed, Quit]
        assert rest[-2].code == closed_code and rest[-2].ws.conn.close_code_sent == sent_code
        with pytest.raises(ConnectionClosed):
            c.send_text("too late")

    def test_our_own_close_is_not_held(self, server: Server) -> None:
        """Events left unread do not hold the peer's reply to our close (nothing more could
        be sent): the closing handshake completes at once, not after ``close_timeout``."""
        c = BackgroundClient(server.url(), close_timeout=30)
        c.start()
        assert isinstance(c.events.get(timeout=10), Opened)
        c.send_text("unread")
        end = time.monotonic() + 10
        while len(c.events) == 0 and time.monotonic() < end:
            time.sleep(0.01)
        c.close(1000, "bye")
        assert c.join(5)
        assert [type(e) for e in _drain(c)] == [Text, Closed, Quit]
        assert c.ws.close_code == 1000 and c.ws.clean

    @pytest.mark.parametrize("trailer", ["opcode", "close"])
    def test_answer_queued_but_not_yet_run_goes_first(self, trailer: str) -> None:
        """The application answered and came back before the IO thread ran its command (the
        wake-up and the close in one select): the command still runs before the close. The
        IO thread is made to look at the close exactly then (it waits, in ``_hold_close``,
        until the application is back in ``get``)."""
        frame, sent_code, _ = _TRAILERS[trailer]

        class Racing(BackgroundClient):
            def _hold_close(self, ws: WebSocket) -> bool:
                q = self.events
                end = time.monotonic() + 5
                while not (q._back == q._taken == q._put) and time.monotonic() < end:
                    time.sleep(0.005)
                assert ws.pending_commands == 1  # the answer, queued and not yet run
                return super()._hold_close(ws)

        peer = _RawPeer([_HELLO, frame], gap=0.05)
        c = Racing(peer.url(), close_timeout=5)
        c.start()
        for ev in c.events:
            if isinstance(ev, Text):
                time.sleep(0.2)  # the close is in the engine, the IO thread in _hold_close
                c.send_text("echo:" + ev.data)
        assert c.join(10)
        peer.join()
        assert _closes_last(peer.frames) == [(0x81, b"echo:hello"), (0x88, sent_code)]

    @pytest.mark.parametrize("trailer", ["opcode", "close"])
    def test_close_called_during_a_hold_ends_at_once(self, trailer: str) -> None:
        """The application, holding the message, closes itself instead of coming back: the
        held close goes ahead then, not after ``close_timeout``."""
        frame, sent_code, _ = _TRAILERS[trailer]
        peer = _RawPeer([_HELLO, frame], gap=0.05)
        c = BackgroundClient(peer.url(), close_timeout=30)
        c.start()
        assert isinstance(c.events.get(timeout=10), Opened)
        assert c.events.get(timeout=10) == Text("hello")
        time.sleep(0.2)  # the close is held by now
        c.close(4000, "mine")
        assert c.join(5)
        peer.join()
        assert _closes_last(peer.frames) == [(0x88, sent_code)]  # the peer's turn came first
        rest = _drain(c)
        assert [type(e) for e in rest] == ([Error] if sent_code == 1002 else []) + [Closed, Quit]

    @pytest.mark.parametrize("trailer", ["opcode", "close"])
    def test_peer_eof_during_a_hold_ends_at_once(self, trailer: str) -> None:
        """The peer closes TCP behind its close/violation while the application still holds
        the message: nothing can be answered any more, the connection ends at once."""
        frame, sent_code, _ = _TRAILERS[trailer]
        peer = _RawPeer([_HELLO, frame], gap=0.05, shut=True)
        c = BackgroundClient(peer.url(), close_timeout=30)
        c.start()
        assert isinstance(c.events.get(timeout=10), Opened)
        assert c.events.get(timeout=10) == Text("hello")
        assert c.join(5)  # the application never comes back
        peer.join()
        rest = _drain(c)
        assert [type(e) for e in rest] == ([Error] if sent_code == 1002 else []) + [Closed, Quit]
        assert rest[-2].code == (1000 if sent_code == 1000 else 1006)
        assert rest[-2].clean is (sent_code == 1000)  # both close frames, then TCP ended
        assert _closes_last(peer.frames) == [(0x88, sent_code)]
