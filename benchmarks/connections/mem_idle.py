"""Memory per idle server connection of wsfast.loop (tracemalloc), N raw clients in a child process.

Usage: python mem_idle.py [N] [none|deflate|deflate15|small]

``deflate`` is the loop's default extension (stdlib zlib, 12-bit windows); ``deflate15`` and
``small`` (9 bits) are on stdlib zlib too, unless WSFAST_DEFLATE=zlib-ng is set (zlib-ng's
memory does not shrink with the window).
"""
import os, socket, subprocess, sys, time, tracemalloc, threading, gc

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
MODE = sys.argv[2] if len(sys.argv) > 2 else "none"

CHILD = r'''
import base64, os, socket, sys, time
port, n, ext = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if ext != "none" else ""
    s.sendall((f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"HTTP/1.1 101"), buf
    if ext != "none":
        s.sendall(bytes([0xC1, 0x80 | 7]) + b"\0\0\0\0" + bytes.fromhex("f248cdc9c90700"))  # one compressed "Hello"
    else:
        s.sendall(bytes([0x81, 0x80 | 5]) + b"\0\0\0\0" + b"Hello")
    socks.append(s)
print("ready", flush=True)
sys.stdin.readline()
'''

def main():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    from wsfast.loop import Loop
    from wsfast.handler import Handler
    from wsfast.permessage_deflate import ServerPerMessageDeflate
    backend = os.environ.get("WSFAST_DEFLATE") or "zlib"
    comp = {"none": None, "deflate": "deflate",
            "deflate15": ServerPerMessageDeflate(backend=backend),
            "small": ServerPerMessageDeflate(server_max_window_bits=9, client_max_window_bits=9,
                                             backend=backend)}[MODE]

    class Echo(Handler):
        def on_text(self, ws, data):
            ws.send_text(data)  # one message each way: inflater and compressor both exist
    loop = Loop()
    lst = loop.listen("127.0.0.1", 0, Echo, compression=comp, ping_interval=20.0)
    t = threading.Thread(target=loop.run_forever)
    gc.collect()
    tracemalloc.start()
    t.start()
    time.sleep(0.2)
    base = tracemalloc.get_traced_memory()[0]
    rss0 = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(lst.port), str(N), MODE],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    deadline = time.time() + 30
    while loop.open_connections < N and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    gc.collect()
    now = tracemalloc.get_traced_memory()[0]
    per = (now - base) / N
    rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    print(f"RSS growth {(rss - rss0) / N / 1024:.1f} KiB per connection (includes tracemalloc's own overhead)")
    print(f"{N} idle server connections, compression={MODE}: {(now-base)/1024:.0f} KiB traced, "
          f"{per:.0f} bytes ({per/1024:.2f} KiB) per connection; open={loop.open_connections}")
    snap = tracemalloc.take_snapshot()
    for st in snap.statistics("lineno")[:8]:
        print("   ", st)
    child.stdin.write("\n"); child.stdin.flush(); child.wait(10)
    loop.stop(); t.join(10); loop.close()

main()
