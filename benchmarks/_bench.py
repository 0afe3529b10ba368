"""Timing harness shared by the benchmark groups (see benchmarks/README.md).

A *case* is one workload (e.g. "mask copy 1 KiB") run by several *implementations*
(wsfast, its pure-Python twin, peers, a physical limit such as memcpy). Every implementation
of a case does the same work, which its factory checks once before timing. Timing is
interleaved: repeat r runs every implementation once (in a rotated order), so a noisy
neighbour or a frequency change affects them all alike.

Per implementation:

1. ``factory()`` builds the state (connections after their handshake, buffers…), checks the
   result of one operation against the expected one, and returns ``run(loops)``, which
   performs ``loops`` operations.
2. Calibration (also the warm-up): ``loops`` doubles until a repeat takes a tenth of the
   target, then is scaled so one repeat takes about ``target`` seconds.
3. One more untimed warm-up repeat, then ``repeats`` timed repeats, interleaved with the
   other implementations. Each timed repeat runs with the garbage collector disabled
   (after a ``gc.collect()``).

Per-operation times are reported as median, min, max and quartiles. Throughput is
``work / median``; ratios are ``time(peer) / time(wsfast)``, so higher means wsfast is faster.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

Run = Callable[[int], None]


@dataclass
class Settings:
    quick: bool
    target: float  # seconds (of the chosen clock) per timed repeat
    repeats: int
    min_repeats: int
    clock: str = "cpu"  # "cpu": time.process_time (robust on a loaded machine); "wall": perf_counter
    max_total: float = 270.0  # wall seconds for the whole run (twin process included); later cases shrink beyond it
    deadline: float = float("inf")  # perf_counter() value derived from max_total at start

    @property
    def case_budget(self) -> float:
        """Wall seconds of timed repeats per case; fewer repeats (down to ``min_repeats``) beyond
        it, e.g. when one operation of a slow peer is much longer than ``target``."""
        return max(0.3, self.repeats * self.target * 12)

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        if quick:
            return cls(quick=True, target=0.002, repeats=2, min_repeats=1, max_total=40.0)
        return cls(quick=False, target=0.1, repeats=7, min_repeats=3, max_total=270.0)

    def start(self) -> None:
        self.deadline = time.perf_counter() + self.max_total


@dataclass
class Target:
    """An issue target: ``time(peer) / time(impl) >= min_ratio`` for ``impl`` on ``case``."""

    label: str
    case: str
    peer: str
    min_ratio: float
    impl: str = "wsfast"


@dataclass
class Case:
    group: str
    name: str
    unit: str  # "MB/s", "Mmsg/s"…: throughput unit of work/time
    work: float  # units of work per operation, in the unit's scale (e.g. MB or messages)
    impls: Dict[str, Callable[[], Run]]
    note: str = ""
    per_op_unit: str = "µs"


@dataclass
class Stats:
    loops: int
    times: List[float]  # seconds per operation, one per timed repeat

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def as_dict(self, work: float) -> dict:
        ts = sorted(self.times)
        if len(ts) >= 2:
            q1, _, q3 = statistics.quantiles(ts, n=4, method="inclusive")
        else:
            q1 = q3 = ts[0]
        med = statistics.median(ts)
        return {
            "loops": self.loops,
            "repeats": len(ts),
            "times_s": ts,
            "median_s": med,
            "min_s": ts[0],
            "max_s": ts[-1],
            "q1_s": q1,
            "q3_s": q3,
            "spread_pct": 100.0 * (ts[-1] - ts[0]) / med if med else 0.0,
            "throughput": work / med if med else float("inf"),
        }


def _time(run: Run, loops: int):
    """(cpu, wall) seconds for ``run(loops)``, GC off."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        run(loops)
        c1, w1 = time.process_time(), time.perf_counter()
    finally:
        if enabled:
            gc.enable()
    return c1 - c0, w1 - w0


def _pick(t, clock: str) -> float:
    return t[0] if clock == "cpu" else t[1]


def calibrate(run: Run, target: float, clock: str) -> int:
    """Operations per repeat so that a repeat takes about ``target`` seconds (also warms up)."""
    loops = 1
    while True:
        t = _pick(_time(run, loops), clock)
        if t >= target / 10 or loops >= 1 << 30:
            break
        loops *= 2 if t <= 0 else max(2, min(100, int(target / 10 / t) + 1))
    return max(1, round(loops * target / t)) if t > 0 else loops


def run_case(case: Case, settings: Settings) -> dict:
    """Time every implementation of ``case``; returns {"impls": {label: stats}, "skipped": {label: why}}."""
    runs: Dict[str, Run] = {}
    skipped: Dict[str, str] = {}
    for label, factory in case.impls.items():
        try:
            runs[label] = factory()
        except Skip as exc:
            skipped[label] = str(exc)
        except Exception as exc:  # a peer that does not work here: report, don't die
            skipped[label] = f"error: {type(exc).__name__}: {exc}"
            if os.environ.get("WSFAST_BENCH_DEBUG"):
                traceback.print_exc()
    late = time.perf_counter() > settings.deadline  # over the total budget: shrink what is left
    target = settings.target / 4 if late else settings.target
    clock = settings.clock
    loops: Dict[str, int] = {}
    for label, run in runs.items():
        loops[label] = calibrate(run, target, clock)
        run(loops[label])  # warm-up repeat
    # Bound the case: fewer repeats if the implementations' repeats are long (wall time).
    per_round = sum(_time(runs[label], loops[label])[1] for label in runs) if runs else 0.0
    repeats = settings.min_repeats if late else settings.repeats
    if per_round * repeats > settings.case_budget:
        repeats = max(settings.min_repeats, int(settings.case_budget / per_round))
    times: Dict[str, List[float]] = {label: [] for label in runs}
    walls: Dict[str, List[float]] = {label: [] for label in runs}
    labels = list(runs)
    for r in range(repeats):
        k = r % len(labels) if labels else 0
        for label in labels[k:] + labels[:k]:
            t = _time(runs[label], loops[label])
            times[label].append(_pick(t, clock) / loops[label])
            walls[label].append(t[1] / loops[label])
    impls = {}
    for label in labels:
        d = Stats(loops[label], times[label]).as_dict(case.work)
        d["wall_median_s"] = statistics.median(walls[label])
        d["wall_times_s"] = sorted(walls[label])
        impls[label] = d
    return {
        "group": case.group,
        "unit": case.unit,
        "work_per_op": case.work,
        "note": case.note,
        "clock": clock,
        "shrunk_to_fit_total_budget": late,
        "impls": impls,
        "skipped": skipped,
    }


class Skip(Exception):
    """Raised by a factory when an implementation is not available here (reported, not fatal)."""


# ----------------------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


def environment(repo: str) -> dict:
    import zlib

    import wsfast
    from wsfast import _speedups

    try:
        commit = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5).stdout.strip())
    except Exception:
        commit, dirty = "", False
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": load,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "wsfast_version": wsfast.__version__,
        "wsfast_path": os.path.dirname(wsfast.__file__),
        "wsfast_implementation": _speedups.IMPLEMENTATION,
        "wsfast_parser_implementation": _speedups.PARSER_IMPLEMENTATION,
        "git_commit": commit + ("-dirty" if dirty else ""),
        "peers": {name: _version(name) for name in ("websockets", "aiohttp", "wsproto", "wsaccel", "picows")},
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


@dataclass
class Registry:
    """The cases and targets of the selected groups."""

    cases: List[Case] = field(default_factory=list)
    targets: List[Target] = field(default_factory=list)
    notes: Dict[str, List[str]] = field(default_factory=dict)  # group -> notes
    extra: Dict[str, object] = field(default_factory=dict)  # filled by factories (e.g. negotiated headers)
