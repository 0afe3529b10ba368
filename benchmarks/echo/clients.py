"""Echo benchmark clients, one implementation per process.

    python benchmarks/echo/clients.py IMPL URI PLAN_JSON

IMPL: ``wsfast:MODE`` (any ``wsfast._modes`` mode: blocking, nonblocking, blocking-handler,
background, loop, asyncio, uvloop; ``wsfast:MODE@name=value,...`` passes mode options through
the mode's ``configure``, e.g. ``wsfast:nonblocking@spin_wait=0.001``), ``picows`` (uvloop
when installed), ``picows-asyncio`` (default loop), ``websockets-sync``, ``websockets-asyncio``,
``aiohttp``. The Node ``ws`` client is ``benchmarks/node/echo_client.js``.
Runs the plan's phases (see ``_common``) on one connection and prints one JSON result line.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emit, parse_plan, payload  # noqa: E402

Phase = Dict[str, Any]
_ns = time.perf_counter_ns
_cpu = time.process_time


class Mismatch(Exception):
    """An echo differs from what was sent."""


class ModeUnavailable(Exception):
    """The wsfast mode does not import here."""


def _check_first(sent: bytes, got: Any) -> None:
    if bytes(got) != sent:
        raise Mismatch(f"echo differs: sent {len(sent)} bytes, got {len(got)}")


# ----------------------------------------------------------------------------- generic loops
# Implementations with a blocking or awaitable send/recv pair run the same two loops.


def sync_phases(plan: List[Phase], send: Callable[[bytes], Any], recv: Callable[[], Any]) -> List[Phase]:
    out = []
    for ph in plan:
        data = payload(ph["size"])
        size = len(data)
        warm, count = ph["warmup"], ph["count"]
        c0 = _cpu()
        if ph["kind"] == "rtt":
            samples = []
            send(data)
            _check_first(data, recv())
            for i in range(warm + count - 1):
                t0 = _ns()
                send(data)
                got = recv()
                t1 = _ns()
                if len(got) != size:
                    raise Mismatch(f"echo of {len(got)} bytes for {size}")
                if i >= warm - 1:
                    samples.append(t1 - t0)
                elif i == warm - 2:
                    c0 = _cpu()  # CPU of the timed round trips only
            out.append(dict(ph, samples_ns=samples, cpu_s=_cpu() - c0))
        else:
            total, window = warm + count, ph["window"]
            sent = 0
            for _ in range(min(window, total)):
                send(data)
                sent += 1
            _check_first(data, recv())
            received = 1
            t_start = _ns() if warm <= 1 else 0
            if sent < total:
                send(data)
                sent += 1
            while received < total:
                got = recv()
                received += 1
                if len(got) != size:
                    raise Mismatch(f"echo of {len(got)} bytes for {size}")
                if received == warm:
                    t_start = _ns()
                    c0 = _cpu()
                if sent < total:
                    send(data)
                    sent += 1
            out.append(dict(ph, elapsed_s=(_ns() - t_start) / 1e9, cpu_s=_cpu() - c0))
    return out


async def async_phases(plan: List[Phase], send: Callable[[bytes], Any], recv: Callable[[], Any]) -> List[Phase]:
    out = []
    for ph in plan:
        data = payload(ph["size"])
        size = len(data)
        warm, count = ph["warmup"], ph["count"]
        c0 = _cpu()
        if ph["kind"] == "rtt":
            samples = []
            await send(data)
            _check_first(data, await recv())
            for i in range(warm + count - 1):
                t0 = _ns()
                await send(data)
                got = await recv()
                t1 = _ns()
                if len(got) != size:
                    raise Mismatch(f"echo of {len(got)} bytes for {size}")
                if i >= warm - 1:
                    samples.append(t1 - t0)
                elif i == warm - 2:
                    c0 = _cpu()  # CPU of the timed round trips only
            out.append(dict(ph, samples_ns=samples, cpu_s=_cpu() - c0))
        else:
            total, window = warm + count, ph["window"]
            sent = 0
            for _ in range(min(window, total)):
                await send(data)
                sent += 1
            _check_first(data, await recv())
            received = 1
            t_start = _ns() if warm <= 1 else 0
            if sent < total:
                await send(data)
                sent += 1
            while received < total:
                got = await recv()
                received += 1
                if len(got) != size:
                    raise Mismatch(f"echo of {len(got)} bytes for {size}")
                if received == warm:
                    t_start = _ns()
                    c0 = _cpu()
                if sent < total:
                    await send(data)
                    sent += 1
            out.append(dict(ph, elapsed_s=(_ns() - t_start) / 1e9, cpu_s=_cpu() - c0))
    return out


# ----------------------------------------------------------------------------- callback state machine
# wsfast handlers and picows listeners are callbacks: one state machine drives both.


class Driver:
    """Runs the plan from message callbacks: ``start(send)`` then ``received(send, n)`` per echo."""

    def __init__(self, plan: List[Phase]) -> None:
        self.plan = plan
        self.results: List[Phase] = []
        self.error: Optional[BaseException] = None
        self.done = False
        self._i = -1
        self._data = b""

    def start(self, send: Callable[[bytes], Any]) -> None:
        self._next(send)

    def _next(self, send: Callable[[bytes], Any]) -> None:
        self._i += 1
        if self._i >= len(self.plan):
            self.done = True
            return
        ph = self.plan[self._i]
        self._ph = ph
        self._data = payload(ph["size"])
        self._size = len(self._data)
        self._warm, self._count = ph["warmup"], ph["count"]
        self._total = self._warm + self._count
        self._received = 0
        self._first = True
        self._c0 = _cpu()
        if ph["kind"] == "rtt":
            self._rtt = True
            self._samples: List[int] = []
            self._t0 = _ns()
            send(self._data)
        else:
            self._rtt = False
            self._t_start = 0
            self._sent = min(ph["window"], self._total)
            for _ in range(self._sent):
                send(self._data)

    def received(self, send: Callable[[bytes], Any], data: Any) -> None:
        t1 = _ns()
        if self._first:
            self._first = False
            _check_first(self._data, data)
        elif len(data) != self._size:
            raise Mismatch(f"echo of {len(data)} bytes for {self._size}")
        self._received += 1
        n = self._received
        if self._rtt:
            if n > self._warm:
                self._samples.append(t1 - self._t0)
            elif n == self._warm:
                self._c0 = _cpu()  # CPU of the timed round trips only
            if n >= self._total:
                self.results.append(dict(self._ph, samples_ns=self._samples, cpu_s=_cpu() - self._c0))
                self._next(send)
                return
            self._t0 = _ns()
            send(self._data)
            return
        if n == self._warm or (self._warm == 0 and n == 1):
            self._t_start = t1
            self._c0 = _cpu()
        if self._sent < self._total:
            self._sent += 1
            send(self._data)
        if n >= self._total:
            self.results.append(dict(self._ph, elapsed_s=(_ns() - self._t_start) / 1e9, cpu_s=_cpu() - self._c0))
            self._next(send)


def run_wsfast(mode_name: str, uri: str, plan: List[Phase]) -> List[Phase]:
    from wsfast._modes import get_mode
    from wsfast._options import ClientOptions
    from wsfast.handler import Handler, WebSocket

    mode_name, _, extra = mode_name.partition("@")
    try:
        mode = get_mode(mode_name)
    except Exception as exc:  # not importable (or half written): reported as skipped
        raise ModeUnavailable(f"mode {mode_name!r} is not available: {type(exc).__name__}: {exc}") from exc
    if extra:  # "MODE@name=value,...": mode-specific client options (e.g. spin_wait=0.001)
        configure = getattr(mode, "configure", None)
        if configure is None:
            raise ModeUnavailable(f"mode {mode_name!r} takes no options ({extra})")
        kwargs: Dict[str, Any] = {}
        for item in extra.split(","):
            key, _, value = item.partition("=")
            kwargs[key] = None if value in ("", "None", "none") else float(value)
        mode = configure(**kwargs)
    drv = Driver(plan)

    class Bench(Handler):
        def on_open(self, ws: WebSocket) -> None:
            drv.start(ws.send_binary)
            if drv.done:
                ws.close()

        def on_binary(self, ws: WebSocket, data: bytes) -> None:
            drv.received(ws.send_binary, data)
            if drv.done:
                ws.close()

        def on_error(self, ws: WebSocket, exc: BaseException) -> None:
            if drv.error is None:
                drv.error = exc

    opts = ClientOptions(compression=None, ping_interval=None, max_size=64 * 1024 * 1024)
    mode.run_client(uri, Bench(), opts)
    if drv.error is not None and not drv.done:
        raise drv.error
    if not drv.done:
        raise RuntimeError("the connection closed before the plan finished")
    return drv.results


def run_picows(uri: str, plan: List[Phase], uvloop: bool = True) -> List[Phase]:
    import picows
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    drv = Driver(plan)

    class Bench(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            self.send = lambda data: transport.send(WSMsgType.BINARY, data)
            self.parts: List[bytes] = []
            drv.start(self.send)
            if drv.done:
                transport.send_close()
                transport.disconnect()

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            t = frame.msg_type
            if t == WSMsgType.CLOSE:
                transport.disconnect()
                return
            if t not in (WSMsgType.BINARY, WSMsgType.CONTINUATION):
                return
            if not frame.fin or self.parts:  # a fragmented echo: join it
                self.parts.append(frame.get_payload_as_bytes())
                if not frame.fin:
                    return
                data: Any = b"".join(self.parts)
                self.parts = []
            else:
                data = frame.get_payload_as_memoryview()
            try:
                drv.received(self.send, data)
            except Exception as exc:
                drv.error = exc
                transport.disconnect()
                return
            if drv.done:
                transport.send_close()
                transport.disconnect()

    async def main() -> None:
        transport, _ = await picows.ws_connect(Bench, uri, max_frame_size=64 * 1024 * 1024)
        await transport.wait_disconnected()

    from servers import _run_asyncio

    _run_asyncio(main(), uvloop_if_available=uvloop)
    if drv.error is not None:
        raise drv.error
    if not drv.done:
        raise RuntimeError("the connection closed before the plan finished")
    return drv.results


def run_websockets_sync(uri: str, plan: List[Phase]) -> List[Phase]:
    from websockets.sync.client import connect

    with connect(uri, compression=None, max_size=None, ping_interval=None) as ws:
        return sync_phases(plan, ws.send, ws.recv)


def run_websockets_asyncio(uri: str, plan: List[Phase]) -> List[Phase]:
    from websockets.asyncio.client import connect

    async def main() -> List[Phase]:
        async with connect(uri, compression=None, max_size=None, ping_interval=None) as ws:
            return await async_phases(plan, ws.send, ws.recv)

    return asyncio.run(main())


def run_aiohttp(uri: str, plan: List[Phase]) -> List[Phase]:
    import aiohttp

    async def main() -> List[Phase]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(uri, compress=0, max_msg_size=0, autoping=True) as ws:

                async def recv() -> bytes:
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        raise Mismatch(f"unexpected {msg.type!r}")
                    data: bytes = msg.data
                    return data

                return await async_phases(plan, ws.send_bytes, recv)

    return asyncio.run(main())


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    impl, uri, plan_text = args
    plan = parse_plan(plan_text)
    try:
        if impl.startswith("wsfast:"):
            results = run_wsfast(impl.split(":", 1)[1], uri, plan)
        elif impl in ("picows", "picows-asyncio"):
            results = run_picows(uri, plan, uvloop=impl == "picows")
        elif impl == "websockets-sync":
            results = run_websockets_sync(uri, plan)
        elif impl == "websockets-asyncio":
            results = run_websockets_asyncio(uri, plan)
        elif impl == "aiohttp":
            results = run_aiohttp(uri, plan)
        else:
            emit({"impl": impl, "error": f"unknown client {impl!r}", "skip": True})
            return 2
    except ModeUnavailable as exc:
        emit({"impl": impl, "error": str(exc), "skip": True})
        return 3
    except Exception as exc:
        emit({"impl": impl, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    emit({"impl": impl, "phases": results, "error": None})
    return 0


if __name__ == "__main__":
    sys.exit(main())
