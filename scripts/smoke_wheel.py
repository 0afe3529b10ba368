"""Smoke test of an *installed* wsfast (a wheel, or an sdist install).

    python scripts/smoke_wheel.py --expect cython   # compiled kernels and parser must be active
    python scripts/smoke_wheel.py --expect python   # the pure-Python twins must be active

Run it by path from outside the source tree (scripts/check_wheel.sh and cibuildwheel's
test-command do): the installed package must be the one imported, never ./wsfast. Standard
library only, so it runs in a bare venv. It checks:

* which build is active (``IMPLEMENTATION``, ``PARSER_IMPLEMENTATION``) and, for ``cython``,
  that each compiled module is an extension module (with ``WSFAST_REQUIRE_EXTENSIONS=1`` set
  first, so a broken extension shows its real ImportError, e.g. an unresolved zlib symbol);
  for ``python`` (unless WSFAST_NO_EXTENSIONS is set), that no compiled module is installed;
* each compiled kernel against its pure-Python twin on a few inputs;
* the engine end to end in memory: a ClientConnection/ServerConnection opening handshake
  with permessage-deflate, a compressed masked text message, a binary message back, a
  ping/pong and the closing handshake; that drives every kernel and the parser.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--expect", choices=("cython", "python"), required=True)
    args = ap.parse_args()

    if args.expect == "cython":
        os.environ["WSFAST_REQUIRE_EXTENSIONS"] = "1"
        os.environ.pop("WSFAST_NO_EXTENSIONS", None)

    import wsfast
    import wsfast._speedups as s

    where = os.path.dirname(os.path.abspath(wsfast.__file__))
    cwd = os.path.abspath(os.getcwd())
    assert not os.path.exists(os.path.join(cwd, "wsfast", "__init__.py")), (
        f"run this from outside the source tree (cwd {cwd} holds a wsfast/ package)"
    )
    print(f"wsfast {wsfast.__version__} from {where}")
    core = s.core_implementation()
    print(f"kernels: {s.IMPLEMENTATION} | parser: {s.PARSER_IMPLEMENTATION} | engine and driver: {core}")
    assert s.IMPLEMENTATION == args.expect, (s.IMPLEMENTATION, args.expect)
    assert s.PARSER_IMPLEMENTATION == args.expect, (s.PARSER_IMPLEMENTATION, args.expect)
    assert core == args.expect, (core, args.expect)

    compiled = ["wsfast._mask", "wsfast._utf8", "wsfast._inflate", "wsfast._frame", "wsfast._parser_c",
                "wsfast._messages_c"]
    # (The modules compiled in place, wsfast.connection and the rest, import from source in
    # a pure install: core_implementation() above says which build loaded.)
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name in compiled:
        if args.expect == "cython":
            mod = importlib.import_module(name)
            assert mod.__file__ and mod.__file__.endswith(suffixes), (name, mod.__file__)
        elif not os.environ.get("WSFAST_NO_EXTENSIONS"):  # really installed without them
            try:
                importlib.import_module(name)
            except ImportError:
                pass
            else:
                raise AssertionError(f"{name} is importable but --expect python")

    check_kernels()
    check_engine()
    # The adapter packages and the CLI ship in the wheel (standard library only to import;
    # uvicorn's class needs uvicorn, so it is not imported here).
    for name in ("wsfast.sync", "wsfast.clients", "wsfast.loop", "wsfast.asyncio", "wsfast.cli"):
        importlib.import_module(name)
    from wsfast._modes import MODES, get_mode

    for name in MODES:
        if name != "uvloop":
            get_mode(name)
    print(f"adapters: {', '.join(n for n in MODES if n != 'uvloop')} import")
    print(f"smoke test passed ({args.expect})")
    return 0


def check_kernels() -> None:
    """The active kernels agree with the pure-Python twins (trivially so for --expect python)."""
    import zlib

    from wsfast import _frame_py, _inflate_py, _mask_py, _utf8_py
    from wsfast import _speedups as s

    data = bytes(range(256)) * 5 + b"tail"
    mask = b"\x37\xfa\x21\x3d"
    for phase in range(4):
        for n in (0, 1, 3, 7, 8, 15, 16, 31, 64, len(data)):
            assert s.apply_mask(data[:n], mask, phase) == _mask_py.apply_mask(data[:n], mask, phase)
    buf = bytearray(data)
    s.apply_mask_inplace(buf, mask, 1)
    assert bytes(buf) == _mask_py.apply_mask(data, mask, 1)

    samples = [
        b"plain ascii", "h\u00e9llo w\u00f6rld \u20ac \U0001f600".encode(),
        b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"ok\xffno",
    ]
    for sample in samples:
        fast, slow = s.Utf8Validator(), _utf8_py.Utf8Validator()
        assert fast.feed(sample) == slow.feed(sample), sample
        assert fast.complete == slow.complete, sample

    text = b"The quick brown fox jumps over the lazy dog. " * 200
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = comp.compress(text) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert payload.endswith(b"\x00\x00\xff\xff")
    payload = payload[:-4]
    for cls in (s.Inflater, _inflate_py.Inflater):
        inf = cls(15)
        out = inf.decompress(payload, len(text)) + inf.finish(len(text))
        assert out == text, cls

    fixed = lambda n: mask * (n // 4)  # noqa: E731 - deterministic masking keys
    for masked in (False, True):
        fast = s.FrameEncoder(masked, fixed) if masked else s.FrameEncoder(masked)
        slow = _frame_py.FrameEncoder(masked, fixed) if masked else _frame_py.FrameEncoder(masked)
        for n in (0, 5, 125, 126, 65535, 65536):
            assert fast.encode(0x82, data[:1] * n) == slow.encode(0x82, data[:1] * n), (masked, n)


def check_engine() -> None:
    from wsfast import (
        Accepted,
        BinaryMessage,
        ClientConnection,
        CloseReceived,
        Ping,
        Pong,
        Request,
        ServerConnection,
        TextMessage,
    )
    from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate

    def transfer(src, dst):
        data = b"".join(src.data_to_send())
        if data:
            dst.receive_data(data)
        return list(dst.events())

    client = ClientConnection("example.com", "/smoke", extensions=[ClientPerMessageDeflate()])
    server = ServerConnection(extensions=[ServerPerMessageDeflate()])
    evs = transfer(client, server)
    assert len(evs) == 1 and isinstance(evs[0], Request), evs
    server.accept()
    evs = transfer(server, client)
    assert len(evs) == 1 and isinstance(evs[0], Accepted), evs
    assert evs[0].extensions == ("permessage-deflate",), evs[0]

    text = "h\u00e9llo from the wheel \U0001f600 " * 50  # long enough to be compressed
    client.send_text(text)
    wire = b"".join(client.data_to_send())
    assert wire[0] & 0x40, "RSV1 not set: the message was not compressed"
    server.receive_data(wire)
    evs = list(server.events())
    assert evs == [TextMessage(text)], evs

    blob = bytes(range(256)) * 300
    server.send_binary(blob)
    client.send_ping(b"are you there")
    assert transfer(server, client) == [BinaryMessage(blob)]
    assert transfer(client, server) == [Ping(b"are you there")]
    assert transfer(server, client) == [Pong(b"are you there")]

    client.close(1000, "bye")
    evs = transfer(client, server)
    assert evs == [CloseReceived(1000, "bye")], evs
    evs = transfer(server, client)  # the server's answer echoes the code
    assert len(evs) == 1 and isinstance(evs[0], CloseReceived) and evs[0].code == 1000, evs
    assert server.close_tcp
    print("engine: handshake + permessage-deflate + text/binary/ping/close in memory: ok")


if __name__ == "__main__":
    sys.exit(main())
