"""An echo server that embeds the wsfast sans-IO engine in a plain ``socket`` loop.

One thread per connection, blocking sockets, nothing but the standard library around the
engine. This is the whole integration: read bytes, feed them, act on events, write bytes.

    python examples/echo_server.py --port 9001            # ws://127.0.0.1:9001/
    python examples/echo_server.py --port 9001 --deflate  # with permessage-deflate
"""

from __future__ import annotations

import argparse
import socket
import threading

import wsfast
from wsfast import BinaryMessage, Request, ServerConnection, TextMessage

#: How long the server waits for the client to answer a close or send its handshake.
TIMEOUT = 10.0


def send_all(sock: socket.socket, conn: wsfast.Connection) -> None:
    chunks = conn.data_to_send()
    if len(chunks) == 1:
        sock.sendall(chunks[0])
    elif chunks:
        sock.sendall(b"".join(chunks))


def handle(sock: socket.socket, make_connection) -> None:
    conn: ServerConnection = make_connection()
    sock.settimeout(TIMEOUT)
    try:
        while not conn.close_tcp:
            try:
                data = sock.recv(262144)
            except socket.timeout:
                if conn.state is wsfast.State.OPEN:
                    continue  # an idle client is fine; only handshakes and closes time out
                break
            if data:
                conn.receive_data(data)
            else:
                conn.receive_eof()
            # Take events one at a time and answer each before the next: replies to
            # messages then go out before a close the same packet carried.
            for event in conn.events():
                if isinstance(event, Request):
                    conn.accept()
                elif isinstance(event, TextMessage):
                    conn.send_text(event.data)
                elif isinstance(event, BinaryMessage):
                    conn.send_binary(event.data)
                send_all(sock, conn)
            send_all(sock, conn)
    except OSError:
        pass  # the peer reset the connection: nothing left to do
    finally:
        sock.close()


def serve(host: str, port: int, make_connection, ready: threading.Event | None = None) -> None:
    """Accept connections forever, one thread each."""
    with socket.create_server((host, port), reuse_port=False, backlog=128) as server:
        if ready is not None:
            ready.set()
        while True:
            sock, _ = server.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle, args=(sock, make_connection), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--max-size", type=int, default=16 * 1024 * 1024, help="max message size")
    args = parser.parse_args()

    extensions = []
    if args.deflate:
        from wsfast.permessage_deflate import ServerPerMessageDeflate

        extensions.append(ServerPerMessageDeflate())

    def make_connection() -> ServerConnection:
        return ServerConnection(extensions=extensions, max_message_size=args.max_size)

    print(f"wsfast {wsfast.__version__} ({wsfast._speedups.IMPLEMENTATION}) echo server "
          f"on ws://{args.host}:{args.port}/", flush=True)
    try:
        serve(args.host, args.port, make_connection)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
