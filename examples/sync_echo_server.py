"""A blocking echo server written the simplest way: one thread per connection, ``for message
in ws: ws.send(message)``. Messages are echoed as they came (text as text, binary as binary).

    python examples/sync_echo_server.py --port 8765 [--max-size BYTES]
"""

from __future__ import annotations

import argparse

from wsfast.sync import ServerConnection, serve


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--max-size", type=int, default=1 << 20)
    args = parser.parse_args()
    with serve(echo, args.host, args.port, ping_interval=None, max_size=args.max_size) as server:
        print(server.url, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
