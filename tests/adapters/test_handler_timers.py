"""``ws.call_later`` runs the same handler's timers in every callback adapter: the three
client modes and the blocking server keep them in the driver (between reads, with the
keepalive), the loop and asyncio use their own timer services. Order, cancel, a raising
callback, and "no timer fires after on_close" are the same everywhere."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, List, Tuple

import pytest

from wsfast._modes import available_modes, get_mode
from wsfast._options import ServerOptions
from wsfast.asyncio import open_handler
from wsfast.handler import Handler, WebSocket
from wsfast.loop import Loop

from .test_clients import MODES, Server, run_mode


class Timed(Handler):
    """Schedules four timers at open, out of order; one is cancelled, one raises; the last
    closes. The echo server sends back what each timer sent."""

    def __init__(self) -> None:
        self.received: List[Any] = []
        self.closes: List[Tuple[int, str, bool]] = []
        self.fired: List[str] = []
        self.after_close: List[str] = []
        self.done = threading.Event()

    def on_open(self, ws: WebSocket) -> None:
        def send(text: str) -> None:
            self.fired.append(text)
            ws.send_text(text)

        def boom() -> None:
            self.fired.append("boom")
            raise RuntimeError("timer failed on purpose")

        def late() -> None:  # scheduled past the close: must never run
            self.after_close.append("late")

        ws.call_later(0.06, lambda: send("second"))
        ws.call_later(0.02, lambda: send("first"))
        ws.call_later(0.04, boom)
        ws.call_later(0.03, lambda: send("cancelled")).cancel()
        ws.call_later(0.15, lambda: ws.close(1000, "timers done"))
        ws.call_later(0.4, late)

    def on_text(self, ws: WebSocket, data: str) -> None:
        self.received.append(data)

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.closes.append((code, reason, clean))
        self.done.set()


def check(h: Timed, caplog: pytest.LogCaptureFixture) -> None:
    assert h.fired == ["first", "boom", "second"]
    assert h.received == ["first", "second"]
    assert [(c, clean) for c, _, clean in h.closes] == [(1000, True)]  # the reason is the echo's
    assert any("timer failed on purpose" in (r.exc_text or str(r.exc_info)) for r in caplog.records
               if r.levelno >= logging.ERROR)
    time.sleep(0.5)  # past the last timer: it died with the connection
    assert h.after_close == []


@pytest.fixture
def server() -> Any:
    with Server() as s:
        yield s


@pytest.mark.parametrize("mode", MODES)
def test_timers_in_every_client_mode(server: Server, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    h = Timed()
    run_mode(mode, server.url(), h, compression=None)
    check(h, caplog)


def test_timers_in_the_loop(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    h = Timed()
    with Loop() as loop:
        loop.connect(server.url(), h, ping_interval=None)
        give_up = time.monotonic() + 10
        end: List[float] = []

        def poll() -> None:  # leave 0.5 s after the close: past the late timer
            now = time.monotonic()
            if h.done.is_set() and not end:
                end.append(now + 0.5)
            if (end and now >= end[0]) or now >= give_up:
                loop.leave()
            else:
                loop.call_later(0.01, poll)

        loop.call_later(0.01, poll)
        loop.run()
    check(h, caplog)


def test_timers_in_asyncio(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    h = Timed()

    async def main() -> None:
        await open_handler(server.url(), h, ping_interval=None)
        for _ in range(1000):
            if h.done.is_set():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)

    asyncio.run(main())
    check(h, caplog)


class Ticker(Handler):
    """Server side: a timer sends "tick" 50 ms after the open, another (cancelled) "never"."""

    def on_open(self, ws: WebSocket) -> None:
        ws.call_later(0.03, lambda: ws.send_text("never")).cancel()
        ws.call_later(0.05, lambda: ws.send_text("tick"))


@pytest.mark.parametrize("mode", [m for m in available_modes() if get_mode(m).has_server])
def test_timers_in_every_server_mode(mode: str) -> None:
    from wsfast.sync import connect

    stop = threading.Event()
    urls: List[str] = []
    ready = threading.Event()

    def serve() -> None:
        get_mode(mode).run_server("127.0.0.1", 0, Ticker, ServerOptions(ping_interval=None),
                                  lambda url: (urls.append(url), ready.set()), stop)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        assert ready.wait(10), "the server did not start"
        with connect(urls[0], ping_interval=None, compression=None) as ws:
            assert ws.recv(5) == "tick"
            with pytest.raises(TimeoutError):
                ws.recv(0.2)  # the cancelled one never comes
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()
