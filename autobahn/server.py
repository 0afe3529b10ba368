"""Run the Autobahn fuzzingclient (kosoku) against a wsfast server this script starts itself.

    python autobahn/server.py                          # main server, compiled kernels, 517 cases
    python autobahn/server.py --impl python -x '12.*' -x '13.*'   # pure-Python twin, 1-10
    python autobahn/server.py -i '6.4.*' -p 1          # a selection (kosoku -i/-x globs)
    python autobahn/server.py --list                   # the servers it knows

The server starts on a free loopback port with the kernel twin selected by environment
(``--impl cython`` sets ``WSFAST_REQUIRE_EXTENSIONS=1``, so a missing build fails the run;
``--impl python`` sets ``WSFAST_NO_EXTENSIONS=1``). kosoku runs through
``kosoku_patched.py`` (see there: one runner quirk fixed) inside ``timeout``. Reports land in
``autobahn/reports/server-<name>-<impl>/`` with ``run.json`` (selection, wall time, versions)
next to kosoku's ``index.json``; judge them with ``check.py``. The exit status is 0 when
kosoku produced a report, whatever its verdicts (kosoku's own exit code is lenient and is
recorded, not used).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import common

MAX_SIZE = 16 * 1024 * 1024  # 9.x sends 16 MiB messages (AUTOBAHN.md, "Settings")

#: Servers under test: name -> (description, command). ``{python}``, ``{host}`` and
#: ``{port}`` are filled in; the command runs from the repository root with the working tree
#: first on PYTHONPATH. Every server must echo text as text and binary as binary, accept
#: permessage-deflate (with client_no_context_takeover / client_max_window_bits), take
#: 16 MiB messages with no fragment-count limit, and never send keepalive pings.
SERVERS: Dict[str, tuple] = {
    "main": (
        "examples/echo_server.py: the engine in a plain blocking-socket loop, thread per "
        "connection, permessage-deflate, 16 MiB messages",
        ["{python}", "examples/echo_server.py", "--host", "{host}", "--port", "{port}",
         "--deflate", "--max-size", str(MAX_SIZE)],
    ),
}

#: Every adapter with a server, run through the CLI (``python -m wsfast echo-server --mode``):
#: the same echo handler on each. Compression is on (the CLI's default), keepalive off.
for _mode, _what in (
    ("blocking", "wsfast.sync: one thread per connection, recv on the caller's thread"),
    ("loop", "wsfast.loop: the selector event loop, every connection on one thread"),
    ("asyncio", "wsfast.asyncio: BufferedProtocol on the default asyncio loop"),
    ("uvloop", "wsfast.asyncio on uvloop"),
):
    SERVERS[_mode] = (
        f"python -m wsfast echo-server --mode {_mode}: {_what}",
        ["{python}", "-m", "wsfast", "echo-server", "--mode", _mode, "--host", "{host}", "--port", "{port}",
         "--max-size", str(MAX_SIZE), "--ping-interval", "0"],
    )
SERVERS["sync-recv"] = (
    "examples/sync_echo_server.py: wsfast.sync.serve with `for message in ws: ws.send(message)`",
    ["{python}", "examples/sync_echo_server.py", "--host", "{host}", "--port", "{port}", "--max-size", str(MAX_SIZE)],
)
SERVERS["uvicorn"] = (
    "an ASGI echo app (autobahn/asgi_echo.py) under uvicorn with --ws wsfast.uvicorn:WSFastProtocol",
    ["{python}", "-m", "uvicorn", "--app-dir", "autobahn", "asgi_echo:app", "--host", "{host}", "--port", "{port}",
     "--ws", "wsfast.uvicorn:WSFastProtocol", "--ws-max-size", str(MAX_SIZE), "--ws-ping-interval", "0",
     "--log-level", "warning"],
)

#: Measured on the 2-core CI machine (AUTOBAHN.md and autobahn/README.md): -p 2 finishes the
#: full suite in about half the time of -p 1 against the main server.
DEFAULT_PARALLELISM = 2


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="main", choices=sorted(SERVERS), help="server under test")
    parser.add_argument("--impl", default="cython", choices=sorted(common.IMPLS), help="kernel twin")
    parser.add_argument("-i", "--include", action="append", default=[], metavar="CASE",
                        help="case id or glob to run (repeatable; default: all)")
    parser.add_argument("-x", "--exclude", action="append", default=[], metavar="CASE",
                        help="case id or glob to skip (repeatable)")
    parser.add_argument("-p", "--parallelism", type=int, default=DEFAULT_PARALLELISM,
                        help="cases kosoku runs at once")
    parser.add_argument("--timeout", type=int, help="seconds before the run is killed "
                        "(default: from the selection)")
    parser.add_argument("--outdir", help="report directory (default: autobahn/reports/server-NAME-IMPL)")
    parser.add_argument("--runner", default="patched", choices=["patched", "kosoku"],
                        help="kosoku_patched.py (default) or the stock kosoku CLI")
    parser.add_argument("--list", action="store_true", help="print the server names and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name in SERVERS:
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
    outdir = Path(args.outdir) if args.outdir else common.REPORTS / f"server-{args.server}-{args.impl}"
    common.clear_outdir(outdir)
    version = common.probe_implementation(python, args.impl)

    host, port = "127.0.0.1", common.free_port()
    description, template = SERVERS[args.server]
    command = [part.format(python=python, host=host, port=port) for part in template]
    kosoku = common.runner_command(python, args.runner) + [
        "-m", "fuzzingclient", "-p", str(args.parallelism), "-o", str(outdir),
        *common.selection_args(args.include, args.exclude), f"{host}:{port}",
    ]
    print(f"== server {args.server} ({args.impl}, wsfast {version}) on {host}:{port}: "
          f"{len(selected)} cases ({common.describe_selection(args.include, args.exclude)}), "
          f"-p {args.parallelism}, timeout {timeout} s", flush=True)

    server_log = open(outdir / "server.log", "w")
    server = subprocess.Popen(command, cwd=str(common.ROOT), env=common.python_env(args.impl),
                              stdout=server_log, stderr=subprocess.STDOUT)
    kosoku_rc = None
    timed_out = False
    server_died = None
    started = time.monotonic()
    try:
        common.wait_listening(host, port, server)
        with open(outdir / "kosoku.log", "w") as log:
            runner = subprocess.Popen(
                ["timeout", "--kill-after=10", str(timeout), *kosoku],
                cwd=str(common.ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            common.tee(runner, log, prefix="   kosoku: ")
            kosoku_rc = runner.wait()
        timed_out = kosoku_rc in (124, 137)
        server_died = server.poll()
    finally:
        common.stop(server)
        server_log.close()
    wall = time.monotonic() - started

    have_report = (outdir / "index.json").exists()
    common.write_run_record(outdir, {
        "kind": "server",
        "name": args.server,
        "description": description,
        "impl": args.impl,
        "wsfast": version,
        "include": args.include,
        "exclude": args.exclude,
        "selected": len(selected),
        "parallelism": args.parallelism,
        "runner": args.runner,
        "command": command,
        "kosoku_exit": kosoku_rc,
        "timed_out": timed_out,
        "server_died": server_died,
        "wall_seconds": round(wall, 1),
    })
    print(f"== server {args.server} ({args.impl}): {wall:.0f} s, kosoku exit {kosoku_rc}"
          f"{', TIMED OUT' if timed_out else ''}"
          f"{f', server exited with {server_died}' if server_died is not None else ''}"
          f"; reports in {outdir}", flush=True)
    if timed_out or not have_report:
        print("!! no complete report: see kosoku.log and server.log", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
