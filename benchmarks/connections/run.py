"""Many connections: ws-rs's benchmark, memory per idle connection, and broadcast.

    python benchmarks/connections/run.py                  # 10,000 connections, 3 repeats
    python benchmarks/connections/run.py --quick          # 500 connections, 1 repeat (< 60 s)
    python benchmarks/connections/run.py -n 2000 --repeats 1 --servers wsfast:asyncio,picows

One driver for every server: ``benchmarks/node/connections.js`` (Node ``ws``, pinned to CPU 1),
so the client is not the Python under test. Each server (``benchmarks/echo/servers.py`` or the
Node ``ws`` echo server, pinned to CPU 0) is started fresh for each repeat, and then:

1. the driver opens N connections at once, at most ``--inflight`` handshakes pending (so the
   listen queue, 4096 deep, does not overflow); failed attempts are *drops* (retried), a
   connection still failing after ``--retries`` is *lost*;
2. the server is sampled idle (``/proc/PID``: RSS, threads, open fds): memory per idle
   connection = (RSS now - RSS before the first connection) / connections open;
3. every connection sends 10 messages of 32 B, one after the other's echo, all connections
   at once (ws-rs's bench). *Wall* = opening + messages; *server CPU* = user + system seconds
   of the server process (all threads) over both;
4. broadcast: one connection asks the server for one 1 KiB message to every connection; the
   time from the request to the last delivery (wsfast: the loop's ``broadcast`` when it has one,
   else a loop over the handler's connections; websockets: ``websockets.broadcast``; picows,
   aiohttp, Node: a loop over their connections);
5. every connection closes.

Thread-per-connection servers (``websockets-sync``, ``wsfast:blocking``) run with at most
``--thread-n`` connections. ``--compression deflate,small`` adds runs with permessage-deflate
(the driver offers it; ``deflate`` is each server's default, ``small`` is wsfast with 9-bit
windows) for the memory figures. The soft RLIMIT_NOFILE is raised to the hard limit for every
process. Repeats are interleaved across servers (rotated order); values are medians (min–max).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
REPO = os.path.dirname(BENCH)
ECHO = os.path.join(BENCH, "echo")
NODE_DIR = os.path.join(BENCH, "node")
sys.path.insert(0, REPO)
sys.path.insert(0, ECHO)
sys.path.insert(1, BENCH)

from _common import proc_stats, raise_nofile  # noqa: E402

_spec = importlib.util.spec_from_file_location("echo_run", os.path.join(ECHO, "run.py"))
assert _spec is not None and _spec.loader is not None
echo_run = importlib.util.module_from_spec(_spec)
sys.modules["echo_run"] = echo_run
_spec.loader.exec_module(echo_run)

THREAD_SERVERS = {"websockets-sync", "wsfast:blocking"}
DEFAULT_SERVERS = ["wsfast:loop", "wsfast:uvloop", "wsfast:asyncio", "picows", "node", "websockets-asyncio",
                   "aiohttp", "websockets-sync", "wsfast:blocking"]
NO_DEFLATE = {"picows"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def server_cmd(impl: str, compression: str) -> List[str]:
    if impl == "node":
        return ["node", os.path.join(NODE_DIR, "echo_server.js"), "--compression",
                "off" if compression == "off" else "deflate"]
    # The CLI echo server has no broadcast trigger: the runner is used for wsfast here.
    return [sys.executable, os.path.join(ECHO, "servers.py"), impl, "--compression", compression]


class Driver:
    """The Node driver process: JSON events out, commands in."""

    def __init__(self, url: str, n: int, args: argparse.Namespace, compression: str) -> None:
        cmd = ["node", os.path.join(NODE_DIR, "connections.js"), url, "--n", str(n), "--messages",
               str(args.messages), "--size", str(args.size), "--inflight", str(args.inflight),
               "--retries", str(args.retries), "--broadcast", str(args.broadcast_size),
               "--compression", "off" if compression == "off" else "deflate"]
        self.proc = subprocess.Popen(echo_run.pinned("1", cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=REPO)
        self._buf = b""

    def event(self, timeout: float) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError(f"the driver said nothing for {timeout:.0f} s")
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"the driver exited ({self.proc.wait(5)})")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        ev: Dict[str, Any] = json.loads(line)
        return ev

    def command(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def one_run(impl: str, n: int, compression: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Start ``impl``'s server, drive it through the phases, stop it; the measurements."""
    srv = echo_run.start_server(impl, "runner", "0", cmd=server_cmd(impl, compression))
    pid = srv.proc.pid  # taskset execs the server, so this is the server's own pid
    out: Dict[str, Any] = {"n": n}
    drv: Optional[Driver] = None
    try:
        time.sleep(0.3)
        base = proc_stats(pid)
        drv = Driver(srv.url, n, args, compression)
        ev = drv.event(args.phase_timeout)
        out.update(opened=ev["opened"], drops=ev["drops"], lost=ev["lost"], connect_s=ev["connect_s"])
        time.sleep(0.5)
        idle = proc_stats(pid)
        opened = max(1, ev["opened"])
        out.update(rss_base=base["rss"], rss_idle=idle["rss"], rss_per_conn=(idle["rss"] - base["rss"]) / opened,
                   threads_base=base["threads"], threads_idle=idle["threads"],
                   threads_per_conn=(idle["threads"] - base["threads"]) / opened,
                   fds_per_conn=(idle["fds"] - base["fds"]) / opened)
        drv.command("messages")
        ev = drv.event(args.phase_timeout)
        after = proc_stats(pid)
        out.update(messages_s=ev["messages_s"], errors=ev["errors"], wall_s=out["connect_s"] + ev["messages_s"],
                   server_cpu_s=after["cpu_s"] - base["cpu_s"],
                   rss_per_conn_after_messages=(after["rss"] - base["rss"]) / opened)
        if args.broadcast_size:
            drv.command("broadcast")
            ev = drv.event(45)
            out.update(broadcast_s=ev.get("broadcast_s"), broadcast_received=ev.get("received"))
        drv.command("close")
        ev = drv.event(30)
        out.update(close_s=ev["close_s"])
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if drv is not None:
            drv.stop()
        echo_run.stop_server_proc(srv.proc)
    return out


def summarize(vals: List[float]) -> Optional[Dict[str, float]]:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": float(len(vals))}


def fmt(s: Optional[Dict[str, float]], scale: float = 1.0, digits: int = 2) -> str:
    if not s:
        return "—"
    m = f"{s['median'] * scale:.{digits}f}"
    if s["n"] < 2:
        return m
    return f"{m} ({s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f})"


def report(env: Dict[str, Any], args: argparse.Namespace, runs: Dict[str, List[Dict[str, Any]]],
           notes: List[str]) -> str:
    lines = [
        f"## wsfast connections benchmark — {env['started']}",
        "",
        f"- Python {env['python']}, {env['platform']}; CPU: {env['cpu_model']} × {env['cpu_count']}; "
        f"load average at start: {', '.join(f'{x:.2f}' for x in env['loadavg_at_start'] or [])}",
        f"- wsfast {env['wsfast_version']} (git {env['git_commit'] or '?'}), kernels "
        f"**{env['wsfast_implementation']}**; Node {env.get('node', '?')}, ws {env.get('node_ws', '?')}",
        f"- {'quick (smoke test)' if args.quick else 'full'}: N = {args.n} connections "
        f"(thread-per-connection servers: {min(args.n, args.thread_n)}), {args.messages} × {args.size} B "
        f"messages each, ≤ {args.inflight} handshakes in flight, {args.repeats} repeat(s); "
        f"server on CPU 0, Node driver on CPU 1; RLIMIT_NOFILE {env.get('nofile')}",
        "",
        "Wall = opening all connections + the messages phase; server CPU = user + system seconds of "
        "the server process over both. Memory per idle connection = RSS growth / connections, sampled "
        "0.5 s after the last one opened. Values: median (min–max) of the repeats.",
        "",
    ]
    lines += [f"- {n}" for n in notes]
    if notes:
        lines.append("")
    header = ["server", "compression", "N", "wall s", "server CPU s", "open s", "messages s", "drops / lost",
              "KiB / idle conn", "KiB / conn after msgs", "threads (idle)", "fds / conn", "broadcast 1 KiB ms"]
    rows = []
    for key, rs in runs.items():
        impl, comp = key.split("|")
        ok = [r for r in rs if "error" not in r]
        errs = [r["error"] for r in rs if "error" in r]
        if not ok:
            rows.append([impl, comp, "", f"failed: {errs[0] if errs else '?'}"] + [""] * 9)
            continue

        def s(k: str, ok: List[Dict[str, Any]] = ok) -> Optional[Dict[str, float]]:
            return summarize([r.get(k) for r in ok])  # type: ignore[misc]

        drops = f"{sum(r['drops'] for r in ok)} / {sum(r['lost'] for r in ok)}"
        bc = s("broadcast_s")
        missed = [r for r in ok if r.get("broadcast_s") is None and args.broadcast_size]
        rows.append([impl, comp, str(ok[0]["n"]), fmt(s("wall_s")), fmt(s("server_cpu_s")), fmt(s("connect_s")),
                     fmt(s("messages_s")), drops, fmt(s("rss_per_conn"), 1 / 1024, 1),
                     fmt(s("rss_per_conn_after_messages"), 1 / 1024, 1),
                     f"{statistics.median([r['threads_idle'] for r in ok]):.0f}",
                     fmt(s("fds_per_conn"), 1, 2),
                     (fmt(bc, 1000, 1) if bc else "—") + (" (timeouts)" if missed else "")])
    lines += echo_run.md_table(header, rows)
    # Ratios of the wsfast servers against picows and Node for wall and CPU (no compression).
    refs = [r for r in ("picows", "node", "websockets-asyncio") if f"{r}|off" in runs]
    rrows = []
    for key, rs in runs.items():
        impl, comp = key.split("|")
        if not impl.startswith("wsfast:") or comp != "off":
            continue
        row = [impl]
        for ref in refs:
            for metric in ("wall_s", "server_cpu_s"):
                ratios = [b[metric] / a[metric] for a, b in zip(rs, runs[f"{ref}|off"])  # noqa: B905
                          if "error" not in a and "error" not in b and a.get(metric)]
                row.append(fmt(summarize(ratios)) + ("×" if ratios else ""))
        rrows.append(row)
    if rrows and refs:
        lines += ["Ratios (time(peer) / time(wsfast); > 1: wsfast lower), paired by repeat:", ""]
        lines += echo_run.md_table(["server"] + [f"÷ {r}: {m}" for r in refs for m in ("wall", "CPU")], rrows)
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 connections, 1 repeat")
    ap.add_argument("-n", type=int, help="connections (default 10000; quick 500)")
    ap.add_argument("--thread-n", type=int, help="connections for thread-per-connection servers "
                    "(default 1000; quick 100)")
    ap.add_argument("--messages", type=int, default=10)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--inflight", type=int, default=200, help="handshakes pending at once")
    ap.add_argument("--retries", type=int, default=5)
    ap.add_argument("--broadcast-size", type=int, default=1024, help="0: no broadcast phase")
    ap.add_argument("--repeats", type=int, help="default 3; quick 1")
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS))
    ap.add_argument("--compression", default="", help="also run with: deflate, small (comma-separated)")
    ap.add_argument("--phase-timeout", type=float, default=120.0)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--markdown", metavar="PATH")
    args = ap.parse_args(argv)
    args.n = args.n or (500 if args.quick else 10000)
    args.thread_n = args.thread_n or (100 if args.quick else 1000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    t0 = time.monotonic()
    nofile = raise_nofile()
    if nofile < min(args.n, 100000) + 100:
        log(f"WARNING: RLIMIT_NOFILE is {nofile}: {args.n} connections may fail (raise the hard limit)")
    from _bench import environment

    env = environment(REPO)
    env.update(echo_run.node_versions())
    env["nofile"] = nofile
    notes: List[str] = []
    if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")):
        log(f"the Node driver needs node and `npm install` in {NODE_DIR}")
        return 2
    _, w_servers, skipped = echo_run.wsfast_modes()
    wanted = [s for s in args.servers.split(",") if s]
    servers = []
    for s in wanted:
        if s.startswith("wsfast:"):
            if s in w_servers:
                servers.append(s)
            else:
                notes.append(next((x for x in skipped if x.startswith(s + ":")), f"{s}: skipped (no server)"))
        else:
            why = echo_run.peer_available(s)
            if why:
                notes.append(f"{s}: skipped ({why})")
            else:
                servers.append(s)
    if "wsfast:loop" in servers:
        try:
            import wsfast.loop as wsloop

            if getattr(wsloop, "broadcast", None) is None:
                notes.append("wsfast:loop has no broadcast() yet: its broadcast row loops over the handler's "
                             "connections")
        except ImportError:
            pass
    for n in notes:
        log(n)
    comps = ["off"] + [c for c in args.compression.split(",") if c]
    keys = []
    for comp in comps:
        for s in servers:
            if comp != "off" and s in NO_DEFLATE:
                continue
            if comp == "small" and not s.startswith("wsfast:"):
                continue
            keys.append(f"{s}|{comp}")
    runs: Dict[str, List[Dict[str, Any]]] = {k: [] for k in keys}
    for r in range(args.repeats):
        order = keys[r % len(keys):] + keys[:r % len(keys)] if keys else []
        for key in order:
            impl, comp = key.split("|")
            n = min(args.n, args.thread_n) if impl in THREAD_SERVERS else args.n
            try:
                res = one_run(impl, n, comp, args)
            except Exception as exc:
                res = {"n": n, "error": f"{type(exc).__name__}: {exc}"}
            runs[key].append(res)
            if "error" in res:
                log(f"[{r + 1}/{args.repeats}] {impl} ({comp}) N={n}: {res['error']}")
            else:
                bc = res.get("broadcast_s")
                log(f"[{r + 1}/{args.repeats}] {impl} ({comp}) N={n}: wall {res['wall_s']:.2f} s, "
                    f"server CPU {res['server_cpu_s']:.2f} s, drops {res['drops']}, lost {res['lost']}, "
                    f"{res['rss_per_conn'] / 1024:.1f} KiB/conn idle, threads {res['threads_idle']:.0f}, "
                    f"broadcast {'-' if bc is None else f'{bc * 1000:.1f} ms'}")
    text = report(env, args, runs, notes)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "args": vars(args), "runs": runs, "notes": notes,
                       "elapsed_s": time.monotonic() - t0}, f, indent=1)
    log(f"done in {time.monotonic() - t0:.1f} s")
    failed = [k for k, rs in runs.items() if k.startswith("wsfast:") and any("error" in r for r in rs)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
