"""The CLI's ``--mode loop``: the selector loop running one client, or a server."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, Dict, Optional, Sequence

from .._modes import StopEvent
from .._options import ClientOptions, ServerOptions
from ..handler import Handler, WebSocket
from ._loop import Loop

__all__ = ["LoopMode", "MODE"]

#: How often ``run_server`` looks at the (thread-side) ``stop`` event.
_STOP_POLL = 0.05


def _kwargs(options: Any) -> Dict[str, Any]:
    return {f.name: getattr(options, f.name) for f in fields(options)}


class LoopMode:
    """A ``wsfast._modes.Mode`` on ``wsfast.loop.Loop``."""

    name = "loop"
    description = "selector event loop (epoll): one thread, many connections"
    has_server = True

    def run_client(self, uri: str, handler: Handler, options: ClientOptions) -> None:
        with Loop() as loop:
            try:
                loop.connect(uri, handler, options=options)
            except Exception as exc:  # a bad URI or option: reported like any failure
                handler.on_error(None, exc)  # type: ignore[arg-type]
                handler.on_close(None, 1006, "", False)  # type: ignore[arg-type]
                return
            try:
                loop.run()  # returns once the connection is gone
            except KeyboardInterrupt:
                loop.shutdown(1001)
                loop.run()

    def run_clients(self, uri: str, handlers: Sequence[Handler], options: ClientOptions) -> None:
        """Every handler's connection on ONE loop thread (``bench --connections N``); returns
        once all of them are gone."""
        with Loop() as loop:
            for handler in handlers:
                try:
                    loop.connect(uri, handler, options=options)
                except Exception as exc:
                    handler.on_error(None, exc)  # type: ignore[arg-type]
                    handler.on_close(None, 1006, "", False)  # type: ignore[arg-type]
            try:
                loop.run()
            except KeyboardInterrupt:
                loop.shutdown(1001)
                loop.run()

    def run_server(
        self,
        host: str,
        port: int,
        handler_factory: Callable[[], Handler],
        options: ServerOptions,
        ready: Callable[[str], None],
        stop: Optional[StopEvent] = None,
    ) -> None:
        with Loop() as loop:
            listener = loop.listen(host, port, handler_factory, options=options)
            if stop is not None:

                def poll() -> None:
                    if stop.is_set():
                        loop.shutdown(1001)
                    else:
                        loop.call_later(_STOP_POLL, poll)

                loop.call_later(_STOP_POLL, poll)
            ready(listener.url)
            try:
                loop.run_forever()
            except KeyboardInterrupt:
                loop.shutdown(1001)
                loop.run_forever()


MODE = LoopMode()

# Keep the names importable for type checkers of callers.
_ = WebSocket
