"""The adapters the CLI (and the benchmarks, and the Autobahn scripts) can run, by name.

Each adapter exposes one ``Mode`` object. The CLI's echo server, interactive client and bench
are written once, as ``Handler`` classes; a mode only knows how to run a client connection
or a server with a handler. ``--mode NAME`` picks one.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, Optional, Protocol

from ._options import ClientOptions, ServerOptions
from .handler import Handler

__all__ = ["Mode", "MODES", "get_mode", "available_modes"]


class Mode(Protocol):
    """What an adapter provides to the CLI."""

    #: The ``--mode`` name.
    name: str
    #: One line for ``--help``.
    description: str
    #: Whether ``run_server`` is supported (the client-only modes say False).
    has_server: bool

    def run_client(self, uri: str, handler: Handler, options: ClientOptions) -> None:
        """Connect to ``uri`` and run ``handler`` until ``on_close`` has run; then return.

        Connection failures reach ``handler.on_error`` and then ``on_close`` (they are not
        raised), like every other error."""

    def run_server(
        self,
        host: str,
        port: int,
        handler_factory: Callable[[], Handler],
        options: ServerOptions,
        ready: Callable[[str], None],
        stop: Optional[StopEvent] = None,
    ) -> None:
        """Serve ``host:port`` with a new handler per connection until ``stop`` is set or
        KeyboardInterrupt; call ``ready(url)`` once listening (``ws://host:port/``, with the
        real port if 0 was asked). Then shut down gracefully (1001) and return."""


class StopEvent(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: Optional[float] = None) -> bool: ...
    def set(self) -> None: ...


#: name -> "module:attribute" of its Mode object; imported on first use.
MODES: Dict[str, str] = {
    "blocking": "wsfast.sync._mode:MODE",
    "nonblocking": "wsfast.clients._mode:NONBLOCKING",
    "blocking-handler": "wsfast.clients._mode:BLOCKING",
    "background": "wsfast.clients._mode:BACKGROUND",
    "loop": "wsfast.loop._mode:MODE",
    "asyncio": "wsfast.asyncio._mode:MODE",
    "uvloop": "wsfast.asyncio._mode:UVLOOP",
}


def get_mode(name: str) -> Mode:
    """The ``Mode`` called ``name``; ``ValueError`` naming the known ones otherwise."""
    target = MODES.get(name)
    if target is None:
        raise ValueError(f"unknown mode {name!r}; known: {', '.join(MODES)}")
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"mode {name!r} is not available: {exc}") from exc
    mode: Mode = getattr(mod, attr)
    return mode


def available_modes() -> Dict[str, Mode]:
    """Every mode that imports on this installation (uvloop needs the uvloop package)."""
    out: Dict[str, Mode] = {}
    for name in MODES:
        try:
            out[name] = get_mode(name)
        except ValueError:
            continue
    return out
