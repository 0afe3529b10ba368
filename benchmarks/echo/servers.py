"""Echo servers for the adapter benchmarks, one implementation per process.

    python benchmarks/echo/servers.py IMPL [--host 127.0.0.1] [--port 0] [--max-size N]
                                           [--compression off|deflate|small]

IMPL: ``wsfast:MODE`` (any ``wsfast._modes`` mode with a server: asyncio, uvloop, blocking,
loop...), ``picows`` (on uvloop when installed, as picows recommends), ``picows-asyncio`` (on asyncio's
default loop), ``websockets-asyncio``,
``websockets-sync``, ``aiohttp``. The Node ``ws`` server is ``benchmarks/node/echo_server.js``.

Prints ``ws://host:port/`` on the first stdout line once listening, echoes every message and
answers ``__broadcast__ N`` (see ``_common``); serves until stdin closes or SIGTERM. Every
server runs without compression (unless asked), without keepalive pings, with the same
message-size limit. This is the benchmark's own runner for wsfast; the CLI's
``python -m wsfast echo-server`` is used instead by ``run.py`` when it exists.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from typing import Any, Callable, List, Optional, Set

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BROADCAST_PREFIX, payload, raise_nofile, ready  # noqa: E402


def _stop_on_eof_or_term(stop: threading.Event) -> None:
    """Set ``stop`` when stdin closes (the driver went away) or on SIGTERM/SIGINT."""

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except Exception:
            pass
        stop.set()

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _broadcast_size(text: str) -> Optional[int]:
    if text.startswith(BROADCAST_PREFIX):
        return int(text[len(BROADCAST_PREFIX):].strip() or "1024")
    return None


# ----------------------------------------------------------------------------- wsfast


def serve_wsfast(mode_name: str, host: str, port: int, max_size: Optional[int], compression: str,
                 stop: threading.Event) -> None:
    from wsfast._modes import get_mode
    from wsfast._options import ServerOptions
    from wsfast.handler import Handler, WebSocket
    from wsfast.permessage_deflate import ServerPerMessageDeflate

    mode = get_mode(mode_name)
    if not mode.has_server:
        raise SystemExit(f"mode {mode_name!r} has no server")
    clients: Set[WebSocket] = set()
    broadcast_fn: Optional[Callable[..., Any]] = None
    try:  # the loop's own broadcast, when it has one
        import wsfast.loop as wsloop

        broadcast_fn = getattr(wsloop, "broadcast", None)
    except ImportError:
        pass

    class Echo(Handler):
        """Echo; ``__broadcast__ N`` sends N bytes to every open connection."""

        def on_open(self, ws: WebSocket) -> None:
            clients.add(ws)

        def on_binary(self, ws: WebSocket, data: bytes) -> None:
            ws.send_binary(data)

        def on_text(self, ws: WebSocket, data: str) -> None:
            n = _broadcast_size(data)
            if n is None:
                ws.send_text(data)
                return
            msg = payload(n)
            if broadcast_fn is not None and mode_name == "loop":
                broadcast_fn(list(clients), msg)
                return
            for c in list(clients):
                if c.is_open:
                    c.send_binary(msg)

        def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
            clients.discard(ws)

    comp: Any
    if compression == "off":
        comp = None
    elif compression == "small":
        comp = ServerPerMessageDeflate(server_max_window_bits=9, client_max_window_bits=9)
    else:
        comp = "deflate"
    opts = ServerOptions(compression=comp, ping_interval=None, max_size=max_size, backlog=4096)
    mode.run_server(host, port, Echo, opts, ready, stop)


# ----------------------------------------------------------------------------- picows


def serve_picows(host: str, port: int, max_size: Optional[int], stop: threading.Event, uvloop: bool) -> None:
    import picows
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    conns: Set[Any] = set()

    class Echo(WSListener):
        """Echo frames as they come (clients send unfragmented messages)."""

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport
            conns.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            conns.discard(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            t = frame.msg_type
            if t == WSMsgType.BINARY:
                transport.send(t, frame.get_payload_as_memoryview(), frame.fin)
            elif t == WSMsgType.CONTINUATION:
                transport.send(t, frame.get_payload_as_memoryview(), frame.fin)
            elif t == WSMsgType.TEXT:
                text = frame.get_payload_as_utf8_text()
                n = _broadcast_size(text)
                if n is None:
                    transport.send(t, frame.get_payload_as_memoryview(), frame.fin)
                else:
                    msg = payload(n)
                    for c in list(conns):
                        c.send(WSMsgType.BINARY, msg)
            elif t == WSMsgType.CLOSE:  # answer with the same payload (code and reason), then close TCP
                transport.send(WSMsgType.CLOSE, frame.get_payload_as_bytes())
                transport.disconnect()

    async def main() -> None:
        server = await picows.ws_create_server(lambda _req: Echo(), host, port,
                                               max_frame_size=max_size or (1 << 31), backlog=4096)
        sock = server.sockets[0]
        ready(f"ws://{host}:{sock.getsockname()[1]}/")
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()

    _run_asyncio(main(), uvloop_if_available=uvloop)


def _run_asyncio(coro: Any, uvloop_if_available: bool = False) -> None:
    """Run ``coro`` to completion on a new loop (uvloop's if asked and installed)."""
    loop: Optional[asyncio.AbstractEventLoop] = None
    if uvloop_if_available:
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            pass
    if loop is None:
        loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(coro)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


# ----------------------------------------------------------------------------- websockets


def serve_websockets_asyncio(host: str, port: int, max_size: Optional[int], compression: str,
                             stop: threading.Event) -> None:
    import websockets
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for msg in ws:
            if isinstance(msg, str):
                n = _broadcast_size(msg)
                if n is not None:
                    websockets.broadcast(server.connections, payload(n))
                    continue
            await ws.send(msg)

    server: Any = None

    async def main() -> None:
        nonlocal server
        server = await serve(handler, host, port, compression=None if compression == "off" else "deflate",
                             max_size=max_size, ping_interval=None, backlog=4096)
        sock = next(iter(server.sockets))
        ready(f"ws://{host}:{sock.getsockname()[1]}/")
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()

    _run_asyncio(main())


def serve_websockets_sync(host: str, port: int, max_size: Optional[int], compression: str,
                          stop: threading.Event) -> None:
    from websockets.sync.server import ServerConnection, serve

    conns: Set[ServerConnection] = set()
    lock = threading.Lock()

    def handler(ws: ServerConnection) -> None:
        with lock:
            conns.add(ws)
        try:
            for msg in ws:
                if isinstance(msg, str):
                    n = _broadcast_size(msg)
                    if n is not None:
                        data = payload(n)
                        with lock:
                            targets: List[ServerConnection] = list(conns)
                        for c in targets:
                            try:
                                c.send(data)
                            except Exception:
                                pass
                        continue
                ws.send(msg)
        finally:
            with lock:
                conns.discard(ws)

    with serve(handler, host, port, compression=None if compression == "off" else "deflate",
               max_size=max_size, ping_interval=None) as server:
        ready(f"ws://{host}:{server.socket.getsockname()[1]}/")
        t = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
        t.start()
        stop.wait()
        server.shutdown()
        t.join(5)


# ----------------------------------------------------------------------------- aiohttp


def serve_aiohttp(host: str, port: int, max_size: Optional[int], compression: str, stop: threading.Event) -> None:
    from aiohttp import WSMsgType, web

    conns: Set[web.WebSocketResponse] = set()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=compression != "off", max_msg_size=max_size or 0, autoping=True)
        await ws.prepare(request)
        conns.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    n = _broadcast_size(msg.data)
                    if n is None:
                        await ws.send_str(msg.data)
                    else:
                        data = payload(n)
                        await asyncio.gather(*(c.send_bytes(data) for c in list(conns)), return_exceptions=True)
        finally:
            conns.discard(ws)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=4096)
        await site.start()
        server: Any = site._server
        sock = server.sockets[0]
        ready(f"ws://{host}:{sock.getsockname()[1]}/")
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    _run_asyncio(main())


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("impl")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-size", type=int, default=64 * 1024 * 1024, help="0: no limit")
    ap.add_argument("--compression", choices=("off", "deflate", "small"), default="off")
    args = ap.parse_args(argv)
    max_size = args.max_size or None
    raise_nofile()
    stop = threading.Event()
    _stop_on_eof_or_term(stop)
    impl = args.impl
    if impl.startswith("wsfast:"):
        serve_wsfast(impl.split(":", 1)[1], args.host, args.port, max_size, args.compression, stop)
    elif impl in ("picows", "picows-asyncio"):
        if args.compression != "off":
            raise SystemExit("picows has no permessage-deflate")
        serve_picows(args.host, args.port, max_size, stop, uvloop=impl == "picows")
    elif impl == "websockets-asyncio":
        serve_websockets_asyncio(args.host, args.port, max_size, args.compression, stop)
    elif impl == "websockets-sync":
        serve_websockets_sync(args.host, args.port, max_size, args.compression, stop)
    elif impl == "aiohttp":
        serve_aiohttp(args.host, args.port, max_size, args.compression, stop)
    else:
        ap.error(f"unknown server {impl!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
