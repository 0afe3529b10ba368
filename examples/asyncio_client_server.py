"""The two faces of wsfast.asyncio in one script: an async echo server and client, then the
same with callback ``Handler`` classes.

    python examples/asyncio_client_server.py
"""

from __future__ import annotations

import asyncio

from wsfast.asyncio import Connection, connect, open_handler, serve, serve_handler
from wsfast.handler import Handler, WebSocket


async def echo(ws: Connection) -> None:
    async for message in ws:  # ends at a normal close
        await ws.send(message)  # waits while the write buffer is above its watermark


class Echo(Handler):
    def on_text(self, ws: WebSocket, data: str) -> None:
        ws.send_text(data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        ws.send_binary(data)


class Hello(Handler):
    def __init__(self, done: asyncio.Future[str]) -> None:
        self.done = done

    def on_open(self, ws: WebSocket) -> None:
        ws.send_text("hello from a handler")

    def on_text(self, ws: WebSocket, data: str) -> None:
        self.done.set_result(data)
        ws.close()


async def main() -> None:
    async with await serve(echo, "127.0.0.1", 0) as server:
        async with connect(server.url) as ws:
            await ws.send("hello")
            print("async face:", await ws.recv(), f"(ping {await ws.ping() * 1e6:.0f} us)")

    server2 = await serve_handler(Echo, "127.0.0.1", 0)
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    await open_handler(server2.url, Hello(done))
    print("callback face:", await done)
    await server2.close()


if __name__ == "__main__":
    asyncio.run(main())
