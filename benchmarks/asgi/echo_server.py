"""Echo servers for bench.py's asyncio part: ``echo_server.py wsfast|picows PORT``."""

import asyncio
import sys
from typing import Any


async def wsfast_server(port: int) -> None:
    from wsfast.asyncio import serve_handler
    from wsfast.handler import Handler, WebSocket

    class Echo(Handler):
        def on_binary(self, ws: WebSocket, data: bytes) -> None:
            ws.send_binary(data)

        def on_text(self, ws: WebSocket, data: str) -> None:
            ws.send_text(data)

    await serve_handler(Echo, "127.0.0.1", port, compression=None, ping_interval=None, max_size=1 << 24)
    await asyncio.Future()


async def picows_server(port: int) -> None:
    from picows import WSListener, WSMsgType, ws_create_server

    class Echo(WSListener):
        def on_ws_frame(self, t: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                t.send_close(frame.get_close_code())
                t.disconnect()
            elif frame.msg_type in (WSMsgType.BINARY, WSMsgType.TEXT):
                t.send(frame.msg_type, frame.get_payload_as_bytes())

    server = await ws_create_server(lambda _req: Echo(), "127.0.0.1", port, max_frame_size=1 << 24)
    await server.serve_forever()


if __name__ == "__main__":
    impl, port = sys.argv[1], int(sys.argv[2])
    asyncio.run(wsfast_server(port) if impl == "wsfast" else picows_server(port))
