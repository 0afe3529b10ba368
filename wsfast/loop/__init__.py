"""``wsfast.loop``: one thread running thousands of WebSocket client and server connections
on a ``selectors`` event loop (epoll on Linux), all driving the one ``wsfast.handler.Handler``.

::

    from wsfast.loop import Loop
    from wsfast.handler import Handler

    class Echo(Handler):
        def on_text(self, ws, data):
            ws.send_text(data)

    loop = Loop()
    loop.listen("127.0.0.1", 8765, Echo)
    loop.run_forever()
"""

from ._loop import Listener, Loop, SlowConsumerPolicy, TimerHandle, broadcast

__all__ = ["Loop", "Listener", "TimerHandle", "SlowConsumerPolicy", "broadcast"]
