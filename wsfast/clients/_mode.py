"""The CLI's ``--mode nonblocking``, ``--mode blocking-handler`` and ``--mode background``.

Client-only modes (``has_server`` is False). ``run_client`` returns after the handler's
``on_close``. The background mode drives the user's ``Handler`` from the event queue on the
caller's thread: the same handler works unchanged, and what it measures is the background
mode's real path (events out of the IO thread, commands back through its queue). Its ``ws``
is a thin stand-in whose sends wait for room when the command queue is full (instead of
raising ``QueueFull``) and whose ``call_later`` timers run on the caller's thread too,
between events; everything else is the connection's ``WebSocket``.

``NONBLOCKING.configure(spin_wait=0.001)`` (or any mode-specific option of the client class)
gives a Mode with those options.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .._modes import StopEvent
from .._options import ClientOptions, ServerOptions
from ..handler import DriverTimer, Handler, WebSocket
from .background import BackgroundClient, Binary, Closed, Error, Opened, PingReceived, PongReceived, Quit, Text
from .blocking import BlockingClient
from .nonblocking import NonBlockingClient

__all__ = ["ClientMode", "NONBLOCKING", "BLOCKING", "BACKGROUND"]

log = logging.getLogger("wsfast.clients")


class ClientMode:
    """A ``wsfast._modes.Mode`` running one of the client classes on the caller's thread."""

    has_server = False

    def __init__(self, name: str, description: str, cls: Any, **kwargs: Any) -> None:
        self.name = name
        self.description = description
        self.cls = cls
        self.kwargs: Dict[str, Any] = kwargs

    def configure(self, **kwargs: Any) -> ClientMode:
        """The same mode with more client options (e.g. ``spin_wait``, ``write_timeout``)."""
        return ClientMode(self.name, self.description, self.cls, **{**self.kwargs, **kwargs})

    def run_client(self, uri: str, handler: Handler, options: ClientOptions) -> None:
        try:
            if self.cls is BackgroundClient:
                _run_background(uri, handler, options, self.kwargs)
                return
            client = self.cls(uri, handler, **self.kwargs, **vars(options))
        except Exception as exc:  # a bad URI or option: reported like any failure
            handler.on_error(None, exc)  # type: ignore[arg-type]
            handler.on_close(None, 1006, "", False)  # type: ignore[arg-type]
            return
        client.run()

    def run_server(
        self,
        host: str,
        port: int,
        handler_factory: Callable[[], Handler],
        options: ServerOptions,
        ready: Callable[[str], None],
        stop: Optional[StopEvent] = None,
    ) -> None:
        raise NotImplementedError(f"--mode {self.name} is a client mode (no server)")

    def __repr__(self) -> str:
        return f"<ClientMode {self.name} {self.kwargs}>"


class _CallerSide:
    """The ``ws`` a handler sees when the background mode drives it from the event queue:
    sends go through the command queue and wait for room; the rest is the ``WebSocket``."""

    def __init__(self, client: BackgroundClient, ws: Any, timers: _CallerTimers) -> None:
        self._client = client
        self._ws = ws
        self._timers = timers
        self._dead = False  # its Closed event was handled: its timers die

    def call_later(self, delay: float, callback: Callable[[], Any]) -> DriverTimer:
        """On the handler's thread (the one reading the event queue), like the callbacks."""
        return self._timers.add(self, delay, callback)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    def send_text(self, text: str) -> None:
        self._client._command(lambda ws: ws.send_text(text), self._ws)

    def send_binary(self, data: Any) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        self._client._command(lambda ws: ws.send_binary(data), self._ws)

    def send(self, message: Any) -> None:
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            message = [p if isinstance(p, (str, bytes)) else bytes(p) for p in message]
        self._client._command(lambda ws: ws.send(message), self._ws)

    def ping(self, payload: Any = b"", callback: Optional[Callable[[float], Any]] = None) -> None:
        self._client._command(lambda ws: ws.ping(payload, callback), self._ws)

    def pong(self, payload: Any = b"") -> None:
        self._client._command(lambda ws: ws.pong(payload), self._ws)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._ws is self._client.ws:
            self._client.close(code, reason)  # after everything queued before it; never QueueFull

    def force_quit(self) -> None:
        if self._ws is self._client.ws:
            self._client.force_quit()

    def __repr__(self) -> str:
        return f"<caller side of {self._ws!r}>"


class _CallerTimers:
    """The handler's ``call_later`` timers in the background mode, on the caller's thread."""

    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, DriverTimer, _CallerSide]] = []
        self._seq = itertools.count()

    def add(self, side: _CallerSide, delay: float, callback: Callable[[], Any]) -> DriverTimer:
        timer = DriverTimer(time.monotonic() + max(delay, 0.0), callback)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer, side))
        return timer

    def run_due(self) -> Optional[float]:
        """Fire what is due (not for closed connections); the seconds to the next one."""
        heap = self._heap
        while heap:
            when, _, timer, side = heap[0]
            if timer.cancelled or side._dead:
                heapq.heappop(heap)
                continue
            left = when - time.monotonic()
            if left > 0:
                return left
            heapq.heappop(heap)
            timer.cancelled = True
            try:
                timer.callback()
            except Exception:
                log.exception("timer callback %r raised", timer.callback)
        return None


def _run_background(uri: str, handler: Handler, options: ClientOptions, kwargs: Dict[str, Any]) -> None:
    kw = {"send_timeout": None, "answer_before_close": True, **kwargs, "queue_events": True}
    client = BackgroundClient(uri, None, **kw, **vars(options))
    client.start()
    sides: Dict[int, _CallerSide] = {}
    timers = _CallerTimers()
    events = client.events
    try:
        while True:
            wait = timers.run_due()
            try:
                ev = events.get(wait)
            except queue.Empty:
                continue  # a timer is due
            if isinstance(ev, Quit):
                break
            ws: Optional[WebSocket] = getattr(ev, "ws", None)
            if ws is None:
                client.events.task_done()
                continue  # Reconnecting
            side = sides.get(id(ws))
            if side is None:
                side = sides[id(ws)] = _CallerSide(client, ws, timers)
            h: Any = side
            t = type(ev)
            try:
                if t is Text:
                    handler.on_text(h, ev.data)  # type: ignore[attr-defined]
                elif t is Binary:
                    handler.on_binary(h, ev.data)  # type: ignore[attr-defined]
                elif t is Opened:
                    handler.on_open(h)
                elif t is PingReceived:
                    handler.on_ping(h, ev.payload)  # type: ignore[attr-defined]
                elif t is PongReceived:
                    handler.on_pong(h, ev.payload)  # type: ignore[attr-defined]
                elif t is Error:
                    handler.on_error(h, ev.exc)  # type: ignore[attr-defined]
                elif t is Closed:
                    sides.pop(id(ws), None)
                    side._dead = True  # its timers die with it
                    handler.on_close(h, ev.code, ev.reason, ev.clean)  # type: ignore[attr-defined]
                client.events.task_done()
            except Exception as exc:
                client.events.task_done()
                if t is Closed or t is Error:
                    log.exception("%s raised", "on_close" if t is Closed else "on_error")
                    continue
                log.error("handler raised %r: closing with 1011", exc, exc_info=exc)
                try:
                    handler.on_error(h, exc)
                except Exception:
                    log.exception("on_error raised")
                try:
                    side.close(1011, "internal error")
                except Exception:
                    pass
    finally:
        if not client.join(client._close_wait()):
            client.force_quit()
            client.join(5.0)


NONBLOCKING = ClientMode(
    "nonblocking", "non-blocking socket polled on the caller's thread (busy poll; spin_wait)", NonBlockingClient
)
BLOCKING = ClientMode(
    "blocking-handler", "blocking socket reads on the caller's thread, timers from the read timeout", BlockingClient
)
BACKGROUND = ClientMode(
    "background", "IO thread with an event queue and a command queue (handler driven from the queue)", BackgroundClient
)
