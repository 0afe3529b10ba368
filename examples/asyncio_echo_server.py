"""An asyncio echo server around the wsfast sans-IO engine, using ``asyncio.Protocol``.

The engine is pure computation, so an ``asyncio.Protocol`` drives it directly from its
callbacks: ``data_received`` feeds bytes, events are answered at once, and the bytes the
engine wants written go to ``transport.write``. No task per connection, no queue.

    python examples/asyncio_echo_server.py --port 9002
"""

from __future__ import annotations

import argparse
import asyncio

from wsfast import BinaryMessage, Request, ServerConnection, TextMessage

#: Seconds we wait for the client to close TCP after the closing handshake.
CLOSE_TIMEOUT = 10.0


class EchoProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.conn = ServerConnection(max_message_size=16 * 1024 * 1024)
        self.transport: asyncio.Transport | None = None
        self.close_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self.process()

    def eof_received(self) -> bool:
        self.conn.receive_eof()
        self.process()
        return False  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_timer is not None:
            self.close_timer.cancel()

    def process(self) -> None:
        conn, transport = self.conn, self.transport
        assert transport is not None
        for event in conn.events():  # one at a time: replies go out in order
            if isinstance(event, Request):
                conn.accept()
            elif isinstance(event, TextMessage):
                conn.send_text(event.data)
            elif isinstance(event, BinaryMessage):
                conn.send_binary(event.data)
            self.flush()
        self.flush()
        if conn.close_tcp:
            transport.close()
        elif conn.close_expected() and self.close_timer is None:
            self.close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, transport.abort)

    def flush(self) -> None:
        assert self.transport is not None
        chunks = self.conn.data_to_send()
        if chunks:
            self.transport.writelines(chunks)


async def serve(host: str, port: int) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    return await loop.create_server(EchoProtocol, host, port)


async def main(host: str, port: int) -> None:
    server = await serve(host, port)
    print(f"asyncio echo server on ws://{host}:{port}/", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9002)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
