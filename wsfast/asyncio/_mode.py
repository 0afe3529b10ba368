"""The CLI's ``--mode asyncio`` and ``--mode uvloop``: the callback face on an event loop
that ``run_client``/``run_server`` create and run until done (on Python 3.10 too)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Optional

from .._modes import StopEvent
from .._options import ClientOptions, ServerOptions
from ..handler import Handler, WebSocket
from ._protocol import READ_SIZE
from .client import _bounded, _new_ws, _transport
from .server import Server

__all__ = ["AsyncioMode", "MODE", "UVLOOP"]

#: How often ``run_server`` looks at the (thread-side) ``stop`` event.
_STOP_POLL = 0.05


class AsyncioMode:
    """A ``wsfast._modes.Mode`` running on asyncio's default loop or on uvloop."""

    has_server = True

    def __init__(self, name: str, description: str, uvloop: bool) -> None:
        self.name = name
        self.description = description
        self.uvloop = uvloop

    def _run(self, main: Coroutine[Any, Any, None]) -> None:
        """Run ``main`` on a new loop (uvloop's if asked) and close the loop after.

        Written out rather than ``asyncio.Runner`` (3.11+), since the package supports 3.10:
        on KeyboardInterrupt the task is cancelled and run to its end (the server's
        graceful close), then the interrupt propagates."""
        if self.uvloop:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(main)
            try:
                loop.run_until_complete(task)
            except KeyboardInterrupt:
                task.cancel()
                loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
                raise
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def run_client(self, uri: str, handler: Handler, options: ClientOptions) -> None:
        self._run(_client(uri, handler, options))

    def run_server(
        self,
        host: str,
        port: int,
        handler_factory: Callable[[], Handler],
        options: ServerOptions,
        ready: Callable[[str], None],
        stop: Optional[StopEvent] = None,
    ) -> None:
        try:
            self._run(_server(host, port, handler_factory, options, ready, stop))
        except KeyboardInterrupt:
            pass  # _run cancelled the server task, which closed gracefully


class _Done(Handler):
    """Forwards every callback to the user's handler and resolves a future at ``on_close``."""

    def __init__(self, inner: Handler, done: asyncio.Future[None]) -> None:
        self.inner = inner
        self.done = done
        # The hot callbacks go straight to the user's bound methods (no extra frame).
        self.on_text = inner.on_text  # type: ignore[method-assign]
        self.on_binary = inner.on_binary  # type: ignore[method-assign]
        self.on_ping = inner.on_ping  # type: ignore[method-assign]
        self.on_pong = inner.on_pong  # type: ignore[method-assign]
        self.on_open = inner.on_open  # type: ignore[method-assign]
        self.on_error = inner.on_error  # type: ignore[method-assign]
        self.on_request = inner.on_request  # type: ignore[method-assign]
        self.on_idle = inner.on_idle  # type: ignore[method-assign]
        self.on_pause = inner.on_pause  # type: ignore[method-assign]
        self.on_resume = inner.on_resume  # type: ignore[method-assign]

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        try:
            self.inner.on_close(ws, code, reason, clean)
        finally:
            if not self.done.done():
                self.done.set_result(None)


async def _client(uri: str, handler: Handler, options: ClientOptions) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    try:
        parsed, ws, tio = _new_ws(uri, _Done(handler, done), options, loop)
    except Exception as exc:  # a bad URI or option: reported like any failure
        handler.on_error(None, exc)  # type: ignore[arg-type]
        handler.on_close(None, 1006, "", False)  # type: ignore[arg-type]
        return
    ws.open_timeout = options.open_timeout
    try:
        where = f"connecting to {parsed.host_header}"
        await _bounded(_transport(parsed, ws, tio, options, READ_SIZE), options.open_timeout, where)
    except Exception as exc:  # connection failures reach the handler, as in every mode
        ws.error = exc
        ws.closed = True
        handler.on_error(ws, exc)
        handler.on_close(ws, 1006, "", False)
        return
    await done


async def _server(
    host: str,
    port: int,
    handler_factory: Callable[[], Handler],
    options: ServerOptions,
    ready: Callable[[str], None],
    stop: Optional[StopEvent],
) -> None:
    server = Server(handler_factory, options, READ_SIZE)
    await server._start(host, port)
    try:
        ready(server.url)
        if stop is None:
            await asyncio.Future()
        else:
            while not stop.is_set():
                await asyncio.sleep(_STOP_POLL)
    finally:
        await server.close(1001)


MODE = AsyncioMode("asyncio", "asyncio BufferedProtocol on the default event loop", uvloop=False)
UVLOOP = AsyncioMode("uvloop", "asyncio BufferedProtocol on uvloop", uvloop=True)
