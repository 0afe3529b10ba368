"""An ASGI echo app for the Autobahn server run under uvicorn (``autobahn/server.py --server uvicorn``):
text as text, binary as binary, until the client leaves."""


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    event = await receive()
    if event["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        if event.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": event["bytes"]})
        else:
            await send({"type": "websocket.send", "text": event["text"]})
