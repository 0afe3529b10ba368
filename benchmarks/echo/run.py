"""Echo benchmark over loopback: wsfast's adapters against their peers, in one run.

    python benchmarks/echo/run.py                 # full (about 5-10 min on 2 idle cores)
    python benchmarks/echo/run.py --quick         # smoke test for CI (< 60 s; numbers meaningless)
    python benchmarks/echo/run.py --sets pairs --repeats 3 --json out.json --markdown out.md

Client and server are separate processes. Every server runs pinned to CPU 0 (``taskset``);
each client runs twice per repeat, pinned to CPU 0 (*same CPU*) and to CPU 1 (*different
CPUs*). Every client runs the same plan on one connection: round trips of 32 B and 64 KiB
binary messages one at a time (p50/p90/p99 of the individual round trips), then pipelined
echo (a window of messages in flight) of 32 B and 64 KiB (messages/s). Every echo is
checked. Repeats are interleaved across implementations (the order rotates each round), as
in ``benchmarks/run.py``; a value is the median of the repeats, with min..max, and a ratio is
computed per repeat against the peer measured in the same round.

Three sets (``--sets``):

* ``pairs``: each implementation's client against its own server (wsfast's client-only modes
  against one wsfast server);
* ``servers``: one client (``--fixed-client``, default the Node ``ws`` one) against every server;
* ``clients``: every client against one server (``--fixed-server``, default Node ``ws``).

Implementations whose module does not import yet (a wsfast mode not written, a peer not
installed) are skipped with a line saying why. The wsfast servers are the CLI's
``python -m wsfast echo-server`` when ``wsfast/__main__.py`` exists, else this folder's
``servers.py`` runner (``--wsfast-server`` forces one). Exit status 1 only when a wsfast
client or server failed (wrong echo, crash); peers that fail are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
REPO = os.path.dirname(BENCH)
NODE_DIR = os.path.join(BENCH, "node")
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)
sys.path.insert(1, BENCH)

from _common import percentile, proc_stats, raise_nofile  # noqa: E402

PY = sys.executable
PEERS = ["picows", "picows-asyncio", "websockets-sync", "websockets-asyncio", "aiohttp", "node"]
#: Client-only wsfast modes run against the first of these wsfast servers that exists.
CLIENT_ONLY_SERVER = ["wsfast:blocking", "wsfast:loop", "wsfast:asyncio"]
REFS = ["websockets-sync", "picows", "picows-asyncio"]
#: spin_wait settings of the nonblocking client measured besides its busy poll (None); these
#: runs time 32 B round trips only, about 2 s worth (a round trip can take up to spin_wait).
SPIN_WAITS = (0.001, 0.01)
PINNINGS = {"same": "0", "diff": "1"}  # client CPU; the server is always on CPU 0
PINNING_TITLES = {"same": "same CPU (client and server on CPU 0)", "diff": "different CPUs (server 0, client 1)"}
MAX_SIZE = 64 * 1024 * 1024


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- plan and metrics


def make_plan(quick: bool, window32: int, window64k: int, scale: float = 1.0) -> List[Dict[str, Any]]:
    """The phases every client runs; ``scale`` multiplies the full plan's counts (short runs)."""
    if scale != 1.0 and not quick:
        return [dict(ph, count=max(20, int(ph["count"] * scale)), warmup=max(5, int(ph["warmup"] * scale)))
                for ph in make_plan(False, window32, window64k)]
    if quick:
        return [
            {"kind": "rtt", "size": 32, "count": 300, "warmup": 50},
            {"kind": "rtt", "size": 65536, "count": 40, "warmup": 10},
            {"kind": "pipe", "size": 32, "count": 3000, "warmup": 300, "window": window32},
            {"kind": "pipe", "size": 65536, "count": 100, "warmup": 20, "window": window64k},
        ]
    return [
        {"kind": "rtt", "size": 32, "count": 4000, "warmup": 500},
        {"kind": "rtt", "size": 65536, "count": 600, "warmup": 100},
        {"kind": "pipe", "size": 32, "count": 40000, "warmup": 4000, "window": window32},
        {"kind": "pipe", "size": 65536, "count": 2000, "warmup": 200, "window": window64k},
    ]


def plan_for(client: str, plan: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A client with a spin-wait sleep runs only the 32 B round trips, about 2 s of them."""
    if "spin_wait=" not in client:
        return plan
    wait = float(client.rsplit("spin_wait=", 1)[1].split(",")[0])
    rtt = next(p for p in plan if p["kind"] == "rtt" and p["size"] == 32)
    return [dict(rtt, count=max(20, min(rtt["count"], int(2.0 / wait))), warmup=min(rtt["warmup"], 20))]


def size_label(size: int) -> str:
    return "32" if size == 32 else ("64k" if size == 65536 else str(size))


def metrics(phases: List[Dict[str, Any]]) -> Dict[str, float]:
    """One client run's numbers: rtt_<size>_p50/p90/p99 (µs), pipe_<size> (msgs/s), CPU per op."""
    out: Dict[str, float] = {}
    for ph in phases:
        s = size_label(ph["size"])
        if ph["kind"] == "rtt":
            xs = sorted(ph["samples_ns"])
            for q in (50, 90, 99):
                out[f"rtt_{s}_p{q}"] = percentile(xs, q) / 1000.0
            out[f"cpu_rtt_{s}"] = 1e6 * ph["cpu_s"] / max(1, len(xs))  # µs of client CPU per round trip
        else:
            out[f"pipe_{s}"] = ph["count"] / ph["elapsed_s"] if ph["elapsed_s"] > 0 else float("inf")
            out[f"cpu_pipe_{s}"] = 1e6 * ph["cpu_s"] / max(1, ph["count"])
    return out


LOWER_IS_BETTER = ("rtt_", "cpu_")


def better_ratio(metric: str, impl: float, ref: float) -> float:
    """> 1 when ``impl`` is better than ``ref``."""
    if metric.startswith(LOWER_IS_BETTER):
        return ref / impl if impl > 0 else float("inf")
    return impl / ref if ref > 0 else float("inf")


# ----------------------------------------------------------------------------- implementations


def wsfast_modes() -> Tuple[List[str], List[str], List[str]]:
    """(client modes, server modes, skip lines) among ``wsfast._modes.MODES``."""
    from wsfast._modes import MODES, get_mode

    clients, servers, skipped = [], [], []
    for name in MODES:
        try:
            mode = get_mode(name)
        except Exception as exc:  # ValueError when not importable; anything else while it is being written
            skipped.append(f"wsfast:{name}: skipped ({type(exc).__name__}: {exc})")
            continue
        clients.append(f"wsfast:{name}")
        if mode.has_server:
            servers.append(f"wsfast:{name}")
    return clients, servers, skipped


def peer_available(impl: str) -> Optional[str]:
    """None if ``impl`` can run here, else why not."""
    if impl == "node":
        if not shutil.which("node"):
            return "node is not on PATH"
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")):
            return f"Node `ws` is not installed (run `npm install` in {os.path.relpath(NODE_DIR, REPO)})"
        return None
    module = {"picows": "picows", "picows-asyncio": "picows", "websockets-sync": "websockets.sync.client",
              "websockets-asyncio": "websockets.asyncio.client", "aiohttp": "aiohttp"}[impl]
    try:
        __import__(module)
    except ImportError as exc:
        return f"{module} does not import: {exc}"
    return None


def cli_exists() -> bool:
    return os.path.exists(os.path.join(REPO, "wsfast", "__main__.py"))


def server_cmd(impl: str, wsfast_server: str) -> List[str]:
    if impl == "node":
        return ["node", os.path.join(NODE_DIR, "echo_server.js"), "--max-size", str(MAX_SIZE)]
    if impl.startswith("wsfast:") and (wsfast_server == "cli" or (wsfast_server == "auto" and cli_exists())):
        return [PY, "-m", "wsfast", "echo-server", "--mode", impl.split(":", 1)[1], "--host", "127.0.0.1",
                "--port", "0", "--no-compression", "--max-size", str(MAX_SIZE), "--ping-interval", "0"]
    return [PY, os.path.join(HERE, "servers.py"), impl, "--max-size", str(MAX_SIZE)]


def client_cmd(impl: str, url: str, plan: List[Dict[str, Any]]) -> List[str]:
    text = json.dumps(plan)
    if impl == "node":
        return ["node", os.path.join(NODE_DIR, "echo_client.js"), url, text]
    return [PY, os.path.join(HERE, "clients.py"), impl, url, text]


def pinned(cpu: str, cmd: List[str]) -> List[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") else cmd


@dataclass
class Server:
    impl: str
    proc: subprocess.Popen[bytes]
    url: str


def start_server(impl: str, wsfast_server: str, cpu: str, timeout: float = 30.0,
                 cmd: Optional[List[str]] = None) -> Server:
    """Start ``impl``'s server (or ``cmd``) pinned to ``cpu``; wait for its URL line."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    import selectors
    import tempfile
    import threading

    errfile = tempfile.TemporaryFile()
    proc = subprocess.Popen(pinned(cpu, cmd or server_cmd(impl, wsfast_server)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errfile, env=env, cwd=REPO)

    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        if not sel.select(max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(proc.stdout.fileno(), 1)
        if not chunk:
            break
        line += chunk
    sel.close()
    url = line.decode(errors="replace").strip()
    if not url.startswith("ws://"):
        stop_server_proc(proc)
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")[-800:]
        raise RuntimeError(f"no URL within {timeout:.0f} s (got {url!r}); stderr: {err.strip()}")
    out = proc.stdout

    def drain() -> None:  # whatever else the server prints must not block it
        while os.read(out.fileno(), 65536):
            pass

    threading.Thread(target=drain, name=f"drain-{impl}", daemon=True).start()
    return Server(impl, proc, url)


def stop_server_proc(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdin:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_client(impl: str, url: str, plan: List[Dict[str, Any]], cpu: str, timeout: float) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        cp = subprocess.run(pinned(cpu, client_cmd(impl, url, plan)), capture_output=True, timeout=timeout,
                            env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in cp.stdout.decode(errors="replace").splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": f"no result (exit {cp.returncode}): {cp.stderr.decode(errors='replace')[-600:].strip()}"}
    res: Dict[str, Any] = json.loads(lines[-1])
    return res


# ----------------------------------------------------------------------------- combos


@dataclass(frozen=True)
class Combo:
    set: str
    client: str
    server: str

    @property
    def key(self) -> str:
        return f"{self.set}|{self.client}|{self.server}"

    @property
    def label(self) -> str:
        return self.client if self.client == self.server else f"{self.client} → {self.server}"


def build_combos(sets: Sequence[str], clients: List[str], servers: List[str], fixed_client: str,
                 fixed_server: str) -> Tuple[List[Combo], List[str]]:
    combos: List[Combo] = []
    notes: List[str] = []
    if "pairs" in sets:
        wsfast_server = next((s for s in CLIENT_ONLY_SERVER if s in servers), None)
        for c in clients:
            if c in servers:
                combos.append(Combo("pairs", c, c))
            elif c.startswith("wsfast:") and wsfast_server:
                combos.append(Combo("pairs", c, wsfast_server))
                if c == "wsfast:nonblocking":  # issue 12: CPU per round trip at each spin-wait setting
                    combos += [Combo("pairs", f"{c}@spin_wait={w}", wsfast_server) for w in SPIN_WAITS]
    for name, fixed, pool in (("servers", fixed_client, servers), ("clients", fixed_server, clients)):
        if name not in sets:
            continue
        available = clients if name == "servers" else servers
        if fixed not in available:
            notes.append(f"set {name!r} skipped: its fixed implementation {fixed} is not available")
            continue
        combos += [Combo(name, fixed, x) if name == "servers" else Combo(name, x, fixed) for x in pool]
    return combos, notes


# ----------------------------------------------------------------------------- statistics and report


def summarize(values: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": float(len(values))}


def fmt_num(x: float) -> str:
    if x != x:
        return "—"
    if x >= 100_000:
        return f"{x / 1000:,.0f}k"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_spread(s: Optional[Dict[str, float]]) -> str:
    if not s:
        return "—"
    if s["n"] < 2:
        return fmt_num(s["median"])
    return f"{fmt_num(s['median'])} ({fmt_num(s['min'])}–{fmt_num(s['max'])})"


def ratio_stats(results: Dict[str, Any], key: str, ref_key: str, pin: str, metric: str) -> Optional[Dict[str, float]]:
    """Per-round ratios (> 1: ``key`` better) of ``metric``; None when either side is missing."""
    a = results.get(key, {}).get(pin, [])
    b = results.get(ref_key, {}).get(pin, [])
    ratios = []
    for ra, rb in zip(a, b):  # noqa: B905 (a run cut by --budget has fewer repeats)
        if ra and rb and metric in ra and metric in rb:
            ratios.append(better_ratio(metric, ra[metric], rb[metric]))
    if not ratios:
        return None
    return summarize(ratios)


def fmt_ratio(s: Optional[Dict[str, float]]) -> str:
    if not s:
        return "—"
    if s["n"] < 2:
        return f"{s['median']:.2f}×"
    return f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})"


def md_table(header: List[str], rows: List[List[str]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


@dataclass
class Target:
    label: str
    set: str
    client: str
    server: str
    metric: str
    ref_client: str
    ref_server: str
    min_ratio: float


def targets() -> List[Target]:
    t: List[Target] = []
    bb = ("wsfast:blocking", "wsfast:blocking")
    ws = ("websockets-sync", "websockets-sync")
    pw = ("picows", "picows")
    for label, metric, ref, r in (
        ("#11 32 B RTT p50 ≥ 2× websockets.sync", "rtt_32_p50", ws, 2.0),
        ("#11 32 B RTT p50 ≤ picows", "rtt_32_p50", pw, 1.0),
        ("#11 pipelined 32 B ≥ 3× websockets.sync", "pipe_32", ws, 3.0),
        ("#11 pipelined 32 B ≥ picows", "pipe_32", pw, 1.0),
        ("#11 64 KiB RTT p50 ≤ picows", "rtt_64k_p50", pw, 1.0),
        ("#11 pipelined 64 KiB ≥ picows", "pipe_64k", pw, 1.0),
    ):
        t.append(Target(label + " (blocking ↔ blocking)", "pairs", *bb, metric, *ref, r))
    for mode in ("nonblocking",):
        t.append(Target("#12 busy-poll 32 B RTT p50 ≤ picows", "pairs", f"wsfast:{mode}", "*", "rtt_32_p50", *pw, 1.0))
        t.append(Target("#12 busy-poll 32 B RTT p50 ≤ Node ws (aim)", "pairs", f"wsfast:{mode}", "*", "rtt_32_p50",
                        "node", "node", 1.0))
    t.append(Target("#12 blocking-handler within 10 % of busy-poll (32 B RTT p50)", "pairs", "wsfast:blocking-handler",
                    "*", "rtt_32_p50", "wsfast:nonblocking", "*", 0.9))
    t.append(Target("#12 background pipelined 32 B ≥ picows", "pairs", "wsfast:background", "*", "pipe_32", *pw, 1.0))
    for metric, what in (("rtt_32_p50", "32 B RTT p50"), ("pipe_32", "pipelined 32 B")):
        t.append(Target(f"#13 loop server {what} ≥ picows server (same Node client)", "servers", "node",
                        "wsfast:loop", metric, "node", "picows", 1.0))
    for mode, peer in (("asyncio", "picows-asyncio"), ("uvloop", "picows"), ("asyncio", "picows")):
        loop = "uvloop" if peer == "picows" else "default loop"
        for metric, what in (("rtt_32_p50", "32 B RTT p50"), ("rtt_64k_p50", "64 KiB RTT p50"),
                             ("pipe_32", "pipelined 32 B"), ("pipe_64k", "pipelined 64 KiB")):
            t.append(Target(f"#14 {mode} ↔ {mode} {what} ≥ picows ({loop})", "pairs", f"wsfast:{mode}",
                            f"wsfast:{mode}", metric, peer, peer, 1.0))
    return t


def resolve(results: Dict[str, Any], set_: str, client: str, server: str) -> Optional[str]:
    for key in results:
        s, c, v = key.split("|")
        if s == set_ and c == client and (server == "*" or v == server):
            return key
    return None


def report(env: Dict[str, Any], args: argparse.Namespace, combos: List[Combo], results: Dict[str, Any],
           notes: List[str], plan: List[Dict[str, Any]],
           server_info: Dict[str, Any]) -> Tuple[str, List[Dict[str, Any]]]:
    lines: List[str] = []
    peers = ", ".join(f"{k} {v}" for k, v in env["peers"].items() if v)
    load = env["loadavg_at_start"]
    lines += [
        f"## wsfast echo benchmark — {env['started']}",
        "",
        f"- Python {env['python']}, {env['platform']}; CPU: {env['cpu_model']} × {env['cpu_count']} "
        f"(load average at start: {', '.join(f'{x:.2f}' for x in load) if load else 'n/a'})",
        f"- wsfast {env['wsfast_version']} (git {env['git_commit'] or '?'}), "
        f"kernels **{env['wsfast_implementation']}**, parser **{env['wsfast_parser_implementation']}**; "
        f"peers: {peers}; Node {env.get('node', '?')} with ws {env.get('node_ws', '?')}",
        f"- {'quick (smoke test: numbers are meaningless)' if args.quick else 'full'}: {args.repeats} repeat(s), "
        f"interleaved; plan per client run: "
        + "; ".join(f"{p['kind']} {p['size']} B × {p['count']}"
                    + (f" (window {p['window']})" if p["kind"] == "pipe" else "") for p in plan),
        f"- wsfast servers: {server_info.get('wsfast_server_kind', '?')}; servers pinned to CPU 0",
        "",
        "Latencies in µs (lower is better); throughput in messages/s; value = median of the repeats "
        "(min–max). Ratios: > 1 means the row is better than the reference (time(ref)/time(row) for "
        "latency, row/ref for throughput), computed per round and summarized as median (min–max).",
        "",
    ]
    for n in notes:
        lines.append(f"- {n}")
    if notes:
        lines.append("")
    for set_ in ("pairs", "servers", "clients"):
        set_combos = [c for c in combos if c.set == set_]
        if not set_combos:
            continue
        title = {"pairs": "client ↔ its own server", "servers": f"servers, same client ({args.fixed_client})",
                 "clients": f"clients, same server ({args.fixed_server})"}[set_]
        lines += [f"### {set_}: {title}", ""]
        for pin in args.pinnings:
            rows = []
            for c in set_combos:
                runs = [r for r in results.get(c.key, {}).get(pin, []) if r]
                err = results.get(c.key, {}).get(f"{pin}_error")
                if not runs:
                    rows.append([c.label, f"failed: {err}" if err else "—"] + [""] * 8)
                    continue

                def s(m: str, runs: List[Dict[str, float]] = runs) -> Optional[Dict[str, float]]:
                    vals = [r[m] for r in runs if m in r]
                    return summarize(vals) if vals else None

                def med(m: str, runs: List[Dict[str, float]] = runs) -> str:
                    vals = [r[m] for r in runs if m in r]
                    return fmt_num(statistics.median(vals)) if vals else "—"

                cpu = s("cpu_rtt_32")
                rows.append([c.label, fmt_spread(s("rtt_32_p50")), med("rtt_32_p90"), med("rtt_32_p99"),
                             fmt_spread(s("rtt_64k_p50")), med("rtt_64k_p99"), fmt_spread(s("pipe_32")),
                             fmt_spread(s("pipe_64k")),
                             f"{cpu['median'] / 100:.2f}" if cpu else "—",
                             f"{len(runs)}"])
            lines += [f"#### {PINNING_TITLES[pin]}", ""]
            lines += md_table(["client ↔ server", "32 B p50", "p90", "p99", "64 KiB p50", "p99", "pipe 32 B msg/s",
                               "pipe 64 KiB msg/s", "client CPU s / 10k RTT (32 B)", "runs"], rows)
            # Ratios against the references of this set.
            ref_keys = {}
            for ref in REFS:
                if set_ == "pairs":
                    rk = resolve(results, set_, ref, ref)
                elif set_ == "servers":
                    rk = resolve(results, set_, args.fixed_client, ref)
                else:
                    rk = resolve(results, set_, ref, args.fixed_server)
                if rk:
                    ref_keys[ref] = rk
            if ref_keys:
                header = ["client ↔ server"]
                for ref in ref_keys:
                    header += [f"÷ {ref}: 32 B p50", "64 KiB p50", "pipe 32 B", "pipe 64 KiB"]
                rrows = []
                for c in set_combos:
                    if not c.client.startswith("wsfast:") and not c.server.startswith("wsfast:"):
                        continue
                    row = [c.label]
                    for rk in ref_keys.values():
                        for m in ("rtt_32_p50", "rtt_64k_p50", "pipe_32", "pipe_64k"):
                            row.append(fmt_ratio(ratio_stats(results, c.key, rk, pin, m)))
                    rrows.append(row)
                if rrows:
                    lines += [f"Ratios ({PINNING_TITLES[pin]}):", ""]
                    lines += md_table(header, rrows)
    # Targets.
    trows = []
    tresults = []
    for t in targets():
        for pin in args.pinnings:
            key = resolve(results, t.set, t.client, t.server)
            ref_key: Optional[str] = resolve(results, t.set, t.ref_client, t.ref_server)
            if t.ref_server == "*" and key:
                # same wsfast server as the row
                ref_key = resolve(results, t.set, t.ref_client, key.split("|")[2])
            st = ratio_stats(results, key, ref_key, pin, t.metric) if key and ref_key else None
            if st is None:
                missing = f"{t.client} → {t.server}" if not key else f"{t.ref_client} → {t.ref_server}"
                status = f"n/a ({missing} not measured)"
            else:
                status = "MET" if st["median"] >= t.min_ratio else "NOT MET"
                if st["n"] >= 2 and st["min"] < t.min_ratio <= st["max"]:
                    status += " (borderline: the repeats straddle it)"
            trows.append([t.label, PINNING_TITLES[pin].split(" (")[0], f"≥ {t.min_ratio:g}×", fmt_ratio(st), status])
            tresults.append({"label": t.label, "pinning": pin, "min_ratio": t.min_ratio, "ratio": st, "status": status})
    lines += ["### Targets", ""]
    lines += md_table(["target", "pinning", "needs", "ratio", "status"], trows)
    return "\n".join(lines), tresults


# ----------------------------------------------------------------------------- main


def node_versions() -> Dict[str, str]:
    out = {}
    try:
        out["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        with open(os.path.join(NODE_DIR, "node_modules", "ws", "package.json")) as f:
            out["node_ws"] = json.load(f)["version"]
        out["node_ws"] += " + bufferutil" if os.path.isdir(os.path.join(NODE_DIR, "node_modules", "bufferutil")) else ""
    except Exception:
        pass
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test (< 60 s): tiny counts, 1 repeat, same CPU only")
    ap.add_argument("--repeats", type=int, help="client runs per combination and pinning (default 3; quick 1)")
    ap.add_argument("--sets", help="comma-separated: pairs, servers, clients (default all; quick: pairs,servers)")
    ap.add_argument("--pinnings", default=None, help="comma-separated: same, diff (default both; quick: same)")
    ap.add_argument("--only", default="", help="comma-separated implementations to keep (peers, wsfast:MODE)")
    ap.add_argument("--fixed-client", default="node")
    ap.add_argument("--fixed-server", default="node")
    ap.add_argument("--window32", type=int, default=100, help="messages in flight, pipelined 32 B")
    ap.add_argument("--window64k", type=int, default=16, help="messages in flight, pipelined 64 KiB")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the full plan's message counts "
                    "(e.g. 0.1 for a short run on a busy machine)")
    ap.add_argument("--wsfast-server", choices=("auto", "cli", "runner"), default="auto")
    ap.add_argument("--budget", type=float, help="wall seconds; later client runs are skipped past it "
                    "(default 900; quick 45)")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--markdown", metavar="PATH")
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.pinnings = [p for p in (args.pinnings or ("same" if args.quick else "same,diff")).split(",") if p]
    for p in args.pinnings:
        if p not in PINNINGS:
            ap.error(f"unknown pinning {p!r}")
    sets = [s for s in (args.sets or ("pairs,servers" if args.quick else "pairs,servers,clients")).split(",") if s]
    budget = args.budget or (45.0 if args.quick else 900.0)
    t_start = time.monotonic()
    raise_nofile()

    from _bench import environment

    env = environment(REPO)
    env.update(node_versions())
    notes: List[str] = []
    w_clients, w_servers, skipped = wsfast_modes()
    notes += skipped
    peers_ok = []
    for p in PEERS:
        why = peer_available(p)
        if why:
            notes.append(f"{p}: skipped ({why})")
        else:
            peers_ok.append(p)
    clients = w_clients + peers_ok
    servers = w_servers + peers_ok
    if args.only:
        keep = set(args.only.split(",")) | {args.fixed_client, args.fixed_server, *REFS}
        clients = [c for c in clients if c in keep]
        servers = [s for s in servers if s in keep]
    for n in notes:
        log(n)

    # Servers: one process per implementation, for the whole run, on CPU 0.
    combos, cnotes = build_combos(sets, clients, servers, args.fixed_client, args.fixed_server)
    notes += cnotes
    needed = sorted({c.server for c in combos})
    running: Dict[str, Server] = {}
    failures: List[str] = []
    kind = "CLI (python -m wsfast echo-server)" if (args.wsfast_server == "cli" or (
        args.wsfast_server == "auto" and cli_exists())) else "benchmarks/echo/servers.py runner (wsfast._modes)"
    for impl in needed:
        try:
            running[impl] = start_server(impl, args.wsfast_server, "0")
            log(f"server {impl}: {running[impl].url}")
        except Exception as exc:
            msg = f"server {impl}: failed to start: {exc}"
            notes.append(msg)
            log(msg)
            if impl.startswith("wsfast:"):
                failures.append(msg)
    combos = [c for c in combos if c.server in running]
    plan = make_plan(args.quick, args.window32, args.window64k, args.scale)
    timeout = 40.0 if args.quick else 120.0
    results: Dict[str, Any] = {c.key: {p: [] for p in args.pinnings} for c in combos}
    server_stats: Dict[str, Any] = {}
    over_budget = False
    try:
        for r in range(args.repeats):
            order = combos[r % len(combos):] + combos[:r % len(combos)] if combos else []
            for c in order:
                for pin in args.pinnings:
                    if time.monotonic() - t_start > budget:
                        over_budget = True
                        break
                    if results[c.key].get(f"{pin}_skip"):
                        continue
                    res = run_client(c.client, running[c.server].url, plan_for(c.client, plan), PINNINGS[pin],
                                     timeout)
                    if res.get("error"):
                        results[c.key][f"{pin}_error"] = res["error"]
                        log(f"[{r + 1}/{args.repeats}] {c.set} {c.label} {pin}: {res['error']}")
                        if res.get("skip"):
                            results[c.key][f"{pin}_skip"] = True
                        elif c.client.startswith("wsfast:") or c.server.startswith("wsfast:"):
                            failures.append(f"{c.set} {c.label} {pin}: {res['error']}")
                        results[c.key][pin].append({})
                        continue
                    m = metrics(res["phases"])
                    results[c.key][pin].append(m)
                    log(f"[{r + 1}/{args.repeats}] {c.set} {c.label} {pin}: "
                        + ", ".join(f"{k} {v:,.1f}" for k, v in m.items() if not k.startswith("cpu")))
            if over_budget:
                notes.append(f"stopped after {budget:.0f} s (--budget): later runs are missing")
                break
    finally:
        for impl, srv in running.items():
            try:
                server_stats[impl] = proc_stats(srv.proc.pid)
            except OSError:
                pass
            stop_server_proc(srv.proc)
    text, tres = report(env, args, combos, results, notes, plan, {"wsfast_server_kind": kind})
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "plan": plan, "sets": sets, "pinnings": args.pinnings,
                       "repeats": args.repeats, "results": results, "targets": tres, "notes": notes,
                       "server_stats_at_end": server_stats, "failures": failures,
                       "elapsed_s": time.monotonic() - t_start}, f, indent=1, ensure_ascii=False)
    log(f"done in {time.monotonic() - t_start:.1f} s")
    if failures:
        log("wsfast failures:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
