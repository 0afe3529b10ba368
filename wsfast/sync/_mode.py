"""The CLI's ``--mode blocking``: a ``Handler`` on a blocking socket, on the caller's thread
(client), or thread-per-connection on the ``wsfast.sync`` server machinery (server)."""

from __future__ import annotations

import logging
from typing import Callable, Optional

from .._modes import StopEvent
from .._options import ClientOptions, ServerOptions
from .._sockio import open_client, run_blocking
from ..handler import Handler
from .server import serve_handlers

__all__ = ["BlockingMode", "MODE"]

log = logging.getLogger("wsfast.sync")

#: How often ``run_server`` looks at ``stop`` when it is given.
_STOP_POLL = 0.05


class BlockingMode:
    """A ``wsfast._modes.Mode``: blocking sockets, no helper thread per connection."""

    name = "blocking"
    description = "blocking sockets: the caller's thread (client), a thread per connection (server)"
    has_server = True

    def run_client(self, uri: str, handler: Handler, options: ClientOptions) -> None:
        try:
            ws, sock = open_client(uri, handler, options, cross_thread="lock", logger=log)
        except Exception as exc:  # connection failures reach the handler, as in every mode
            handler.on_error(None, exc)  # type: ignore[arg-type]
            handler.on_close(None, 1006, "", False)  # type: ignore[arg-type]
            return
        run_blocking(ws, sock)

    def run_server(
        self,
        host: str,
        port: int,
        handler_factory: Callable[[], Handler],
        options: ServerOptions,
        ready: Callable[[str], None],
        stop: Optional[StopEvent] = None,
    ) -> None:
        server = serve_handlers(handler_factory, host, port, options)
        try:
            if stop is None:
                ready(server.url)
                server.serve_forever()
                return
            import threading

            t = threading.Thread(target=server.serve_forever, name="wsfast-sync-accept", daemon=True)
            t.start()
            ready(server.url)
            while not stop.wait(_STOP_POLL):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown(options.close_timeout or 10.0)


MODE = BlockingMode()
