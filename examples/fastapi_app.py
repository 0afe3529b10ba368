"""A FastAPI app with a WebSocket endpoint, served by uvicorn on wsfast's protocol class.

    uvicorn examples.fastapi_app:app --ws wsfast.uvicorn:WSFastProtocol
    python examples/fastapi_app.py --port 8000         # the same, through uvicorn.run

The endpoint refuses a wrong token before accepting (HTTP 403), echoes text with the room
name, and a client may ask the server to close with ``/close``.
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI, WebSocket, WebSocketDisconnect, WebSocketException, status

app = FastAPI()


@app.websocket("/ws/{room}")
async def room(websocket: WebSocket, room: str, token: str = "") -> None:
    if token != "secret":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)  # before accept: 403
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            if text == "/close":
                await websocket.close(code=1000, reason="bye")
                return
            await websocket.send_text(f"[{room}] {text}")
    except WebSocketDisconnect:
        pass


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, ws="wsfast.uvicorn:WSFastProtocol")
