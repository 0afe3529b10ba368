"""Run the Autobahn fuzzingserver (kosoku) and drive it with a wsfast client.

    python autobahn/client.py                          # main client, compiled kernels, 517 cases
    python autobahn/client.py --impl python -x '12.*' -x '13.*'   # pure-Python twin, 1-10
    python autobahn/client.py -i '13.3.*'              # a selection (kosoku -i/-x globs)
    python autobahn/client.py --list                   # the clients it knows

kosoku (through ``kosoku_patched.py``, inside ``timeout``) listens on a free loopback port;
the client under test then runs as its own process, with the kernel twin selected by
environment as in ``server.py``, and follows the fuzzingserver protocol:

1. ``/getCaseCount``: one text message, the number of cases N in the selection;
2. ``/runCase?case=i&agent=AGENT`` for i in 1..N: echo every message, text as text and
   binary as binary, until the connection ends; permessage-deflate is offered with
   ``client_no_context_takeover`` and ``client_max_window_bits`` (13.x needs both);
3. ``/updateReports?agent=AGENT``: kosoku writes the reports and exits.

Reports land in ``autobahn/reports/client-<name>-<impl>/`` with ``run.json``; judge them
with ``check.py``.

The main client is the ``connect()``/``run()`` loop of ``examples/client.py`` (plain blocking
sockets) with an echo handler: ``python autobahn/client.py --drive ws://HOST:PORT`` runs it
against a fuzzingserver you started yourself. Every case connection is bounded: connect and
both handshakes 10 s, 30 s without a byte while open (then it closes with 1001), so a stuck
case costs at most that and shows up in its report instead of hanging the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import quote

import common

MAX_SIZE = 16 * 1024 * 1024  # 9.x sends 16 MiB messages (AUTOBAHN.md, "Settings")
CASE_TIMEOUT = 10.0  # connect, opening handshake, closing handshake (seconds)
CASE_IDLE_TIMEOUT = 30.0  # no byte for this long on an open case connection: give up

#: Clients under test: name -> (description, command). ``{python}``, ``{url}`` (the
#: fuzzingserver, ``ws://host:port``) and ``{agent}`` are filled in; the command runs from the
#: repository root with the working tree first on PYTHONPATH and must drive every case (see
#: the module docstring), then call /updateReports.
CLIENTS: Dict[str, tuple] = {
    "main": (
        "examples/client.py: the engine in a plain blocking-socket loop, echo handler, "
        "permessage-deflate offered, 16 MiB messages",
        ["{python}", "autobahn/client.py", "--drive", "{url}", "--agent", "{agent}"],
    ),
}

#: Every client adapter, as a ``wsfast._modes`` mode driving one echo ``Handler``.
for _mode in ("blocking", "nonblocking", "blocking-handler", "background", "loop", "asyncio", "uvloop"):
    CLIENTS[_mode] = (
        f"the {_mode} mode (wsfast._modes) with an echo Handler, permessage-deflate offered, 16 MiB messages",
        ["{python}", "autobahn/client.py", "--drive", "{url}", "--agent", "{agent}", "--drive-mode", _mode],
    )


# ---------------------------------------------------------------------------- the driver


def _load_example_client():
    """examples/client.py as a module (examples/ is not a package)."""
    path = common.ROOT / "examples" / "client.py"
    spec = importlib.util.spec_from_file_location("wsfast_example_client", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drive(base_url: str, agent: str) -> int:
    """The main client: run every case the fuzzingserver at ``base_url`` has, then report."""
    import wsfast
    from wsfast import BinaryMessage, TextMessage
    from wsfast.permessage_deflate import ClientPerMessageDeflate

    example = _load_example_client()
    open_state = wsfast.State.OPEN

    def session(target: str, handler, deflate: bool = False) -> None:
        extensions = []
        if deflate:
            # Autobahn's own offer: both client parameters, so every 13.x server variant
            # (no context takeover, window bits 9 or 15) finds something to accept.
            extensions.append(ClientPerMessageDeflate(client_no_context_takeover=True,
                                                      client_max_window_bits=True))
        sock, conn = example.connect(base_url + target, extensions=extensions,
                                     timeout=CASE_TIMEOUT, max_message_size=MAX_SIZE)
        example.run(sock, conn, handler, timeout=CASE_TIMEOUT, idle_timeout=CASE_IDLE_TIMEOUT)

    def echo(conn, event) -> None:
        if conn.state is not open_state:
            return
        if isinstance(event, TextMessage):
            conn.send_text(event.data)
        elif isinstance(event, BinaryMessage):
            conn.send_binary(event.data)

    texts: List[str] = []

    def collect(conn, event) -> None:
        if isinstance(event, TextMessage):
            texts.append(event.data)

    session("/getCaseCount", collect)
    if len(texts) != 1 or not texts[0].isdigit():
        print(f"driver: /getCaseCount answered {texts!r}", file=sys.stderr)
        return 1
    count = int(texts[0])
    print(f"driver: wsfast {wsfast.__version__} ({wsfast._speedups.IMPLEMENTATION}), "
          f"{count} cases, agent {agent}", flush=True)
    agent_q = quote(agent, safe="")
    started = time.monotonic()
    failures = 0
    for i in range(1, count + 1):
        t0 = time.monotonic()
        try:
            session(f"/runCase?case={i}&agent={agent_q}", echo, deflate=True)
            failures = 0
        except OSError as exc:
            # The case report will say what went wrong; a dead fuzzingserver stops the run.
            print(f"driver: case {i}: {exc}", file=sys.stderr, flush=True)
            failures += 1
            if failures >= 3:
                print("driver: 3 cases in a row could not connect, giving up", file=sys.stderr)
                return 1
        took = time.monotonic() - t0
        if took > 5.0:
            print(f"driver: case {i} took {took:.1f} s", flush=True)
        if i % 50 == 0 or i == count:
            print(f"driver: {i}/{count} cases, {time.monotonic() - started:.0f} s", flush=True)
    session(f"/updateReports?agent={agent_q}", collect)
    return 0


def drive_mode(base_url: str, agent: str, mode_name: str) -> int:
    """Drive every case with ``mode_name``'s client running an echo ``Handler``."""
    import wsfast
    from wsfast._modes import get_mode
    from wsfast._options import ClientOptions
    from wsfast.handler import Handler
    from wsfast.permessage_deflate import ClientPerMessageDeflate

    mode = get_mode(mode_name)

    class Echo(Handler):
        def on_text(self, ws, data):
            if ws.is_open:
                ws.send_text(data)

        def on_binary(self, ws, data):
            if ws.is_open:
                ws.send_binary(data)

    class Collect(Handler):
        def __init__(self):
            self.texts: List[str] = []
            self.error = None

        def on_text(self, ws, data):
            self.texts.append(data)

        def on_error(self, ws, exc):
            self.error = exc

    def options(deflate: bool) -> ClientOptions:
        compression = (ClientPerMessageDeflate(client_no_context_takeover=True, client_max_window_bits=True)
                       if deflate else None)
        return ClientOptions(compression=compression, max_size=MAX_SIZE, ping_interval=None,
                             open_timeout=CASE_TIMEOUT, close_timeout=CASE_TIMEOUT)

    counter = Collect()
    mode.run_client(base_url + "/getCaseCount", counter, options(False))
    if len(counter.texts) != 1 or not counter.texts[0].isdigit():
        print(f"driver: /getCaseCount answered {counter.texts!r} ({counter.error!r})", file=sys.stderr)
        return 1
    count = int(counter.texts[0])
    print(f"driver: wsfast {wsfast.__version__} ({wsfast._speedups.IMPLEMENTATION}), mode {mode_name}, "
          f"{count} cases, agent {agent}", flush=True)
    agent_q = quote(agent, safe="")
    started = time.monotonic()
    for i in range(1, count + 1):
        t0 = time.monotonic()
        mode.run_client(f"{base_url}/runCase?case={i}&agent={agent_q}", Echo(), options(True))
        took = time.monotonic() - t0
        if took > 5.0:
            print(f"driver: case {i} took {took:.1f} s", flush=True)
        if i % 50 == 0 or i == count:
            print(f"driver: {i}/{count} cases, {time.monotonic() - started:.0f} s", flush=True)
    mode.run_client(f"{base_url}/updateReports?agent={agent_q}", Collect(), options(False))
    return 0


# ---------------------------------------------------------------------------- the runner


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", default="main", choices=sorted(CLIENTS), help="client under test")
    parser.add_argument("--impl", default="cython", choices=sorted(common.IMPLS), help="kernel twin")
    parser.add_argument("-i", "--include", action="append", default=[], metavar="CASE",
                        help="case id or glob to run (repeatable; default: all)")
    parser.add_argument("-x", "--exclude", action="append", default=[], metavar="CASE",
                        help="case id or glob to skip (repeatable)")
    parser.add_argument("--timeout", type=int, help="seconds before the run is killed "
                        "(default: from the selection)")
    parser.add_argument("--outdir", help="report directory (default: autobahn/reports/client-NAME-IMPL)")
    parser.add_argument("--runner", default="patched", choices=["patched", "kosoku"],
                        help="kosoku_patched.py (default) or the stock kosoku CLI")
    parser.add_argument("--list", action="store_true", help="print the client names and exit")
    parser.add_argument("--drive", metavar="URL",
                        help="be the main client: drive the fuzzingserver at URL (ws://host:port)")
    parser.add_argument("--agent", default="wsfast", help="agent name reported to kosoku (--drive)")
    parser.add_argument("--drive-mode", metavar="MODE", help="with --drive: use this wsfast._modes client mode")
    args = parser.parse_args(argv)

    if args.drive and args.drive_mode:
        return drive_mode(args.drive.rstrip("/"), args.agent, args.drive_mode)
    if args.drive:
        return drive(args.drive.rstrip("/"), args.agent)
    if args.list:
        for name in CLIENTS:
            print(name)
        return 0

    python = os.environ.get("PYTHON") or sys.executable
    try:
        selected = common.select_cases(args.include, args.exclude)
    except ValueError as exc:
        parser.error(str(exc))
    if not selected:
        parser.error("the selection matches no case")
    timeout = args.timeout or common.default_timeout(selected, args.impl)
    outdir = Path(args.outdir) if args.outdir else common.REPORTS / f"client-{args.client}-{args.impl}"
    common.clear_outdir(outdir)
    version = common.probe_implementation(python, args.impl)
    agent = f"wsfast-{args.client}-{args.impl}"

    kosoku = common.runner_command(python, args.runner) + [
        "-m", "fuzzingserver", "-o", str(outdir),
        *common.selection_args(args.include, args.exclude), "127.0.0.1:0",
    ]
    print(f"== client {args.client} ({args.impl}, wsfast {version}): {len(selected)} cases "
          f"({common.describe_selection(args.include, args.exclude)}), timeout {timeout} s", flush=True)

    started = time.monotonic()
    kosoku_log = open(outdir / "kosoku.log", "w")
    runner = subprocess.Popen(
        ["timeout", "--kill-after=10", str(timeout), *kosoku],
        cwd=str(common.ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    listening = threading.Event()
    address: List[str] = []

    def pump() -> None:
        assert runner.stdout is not None
        for line in runner.stdout:
            kosoku_log.write(line)
            kosoku_log.flush()
            sys.stdout.write("   kosoku: " + line)
            sys.stdout.flush()
            m = re.search(r"listening on (ws://\S+)", line)
            if m and not listening.is_set():
                address.append(m.group(1))
                listening.set()
        listening.set()  # EOF: kosoku is gone

    pump_thread = threading.Thread(target=pump, daemon=True)
    pump_thread.start()
    client_rc = None
    kosoku_rc = None
    command: List[str] = []
    try:
        if not listening.wait(30) or not address:
            print("!! kosoku did not start listening", file=sys.stderr)
        else:
            description, template = CLIENTS[args.client]
            command = [part.format(python=python, url=address[0], agent=agent) for part in template]
            with open(outdir / "client.log", "w") as log:
                bounded = ["timeout", "--kill-after=10", str(timeout), *command]
                client = subprocess.Popen(bounded, cwd=str(common.ROOT), env=common.python_env(args.impl),
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                try:
                    common.tee(client, log, prefix="   client: ")
                    client_rc = client.wait()
                finally:
                    common.stop(client)
        # After /updateReports kosoku writes the reports and exits on its own.
        try:
            kosoku_rc = runner.wait(120)
        except subprocess.TimeoutExpired:
            print("!! kosoku did not exit after /updateReports", file=sys.stderr)
    finally:
        common.stop(runner)
        pump_thread.join(5)
        kosoku_log.close()
    wall = time.monotonic() - started

    timed_out = kosoku_rc in (124, 137) or kosoku_rc is None
    have_report = (outdir / "index.json").exists()
    common.write_run_record(outdir, {
        "kind": "client",
        "name": args.client,
        "description": CLIENTS[args.client][0],
        "impl": args.impl,
        "wsfast": version,
        "agent": agent,
        "include": args.include,
        "exclude": args.exclude,
        "selected": len(selected),
        "runner": args.runner,
        "command": command,
        "client_exit": client_rc,
        "kosoku_exit": kosoku_rc,
        "timed_out": timed_out,
        "wall_seconds": round(wall, 1),
    })
    print(f"== client {args.client} ({args.impl}): {wall:.0f} s, client exit {client_rc}, "
          f"kosoku exit {kosoku_rc}{', TIMED OUT' if timed_out else ''}; reports in {outdir}", flush=True)
    if timed_out or not have_report or client_rc != 0:
        print("!! no complete report: see kosoku.log and client.log", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
