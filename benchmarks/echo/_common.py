"""What the echo benchmark's servers, clients and driver agree on (standard library only).

* A server prints its ``ws://host:port/`` URL as the first line of stdout once listening,
  echoes every message (same type, same bytes) and serves until stdin closes or SIGTERM.
  A text message ``__broadcast__ N`` makes it send one N-byte binary message to every open
  connection instead (the connections benchmark).
* A client gets a *plan* (JSON list of phases) and prints one JSON line of results.
  Phase ``{"kind": "rtt", "size": S, "count": C, "warmup": W}``: send one S-byte binary
  message, wait for its echo, repeat W + C times; the last C round trips are timed one by one
  (nanoseconds). Phase ``{"kind": "pipe", "size": S, "count": C, "warmup": W, "window": N}``:
  keep N messages in flight (send one more per echo) for W + C echoes; the time from the W-th
  echo to the last is measured. Every echo's length is checked and the first echo of each
  phase is compared byte for byte.
* Result line: ``{"impl": ..., "phases": [{..phase.., "samples_ns": [...]} or
  {..phase.., "elapsed_s": t}, with "cpu_s" (process CPU time of the phase)], "error": null}``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

BROADCAST_PREFIX = "__broadcast__"


def payload(size: int) -> bytes:
    """The message every implementation sends for ``size`` (deterministic, not compressible
    into nothing, not all zeros)."""
    block = bytes((i * 131 + 7) & 0xFF for i in range(256))
    return (block * (size // 256 + 1))[:size]


def parse_plan(text: str) -> List[Dict[str, Any]]:
    plan = json.loads(text)
    if not isinstance(plan, list):
        raise ValueError("the plan is a JSON list of phases")
    for ph in plan:
        if ph.get("kind") not in ("rtt", "pipe"):
            raise ValueError(f"unknown phase kind in {ph!r}")
        ph.setdefault("warmup", 0)
        ph.setdefault("window", 1)
    return plan


def emit(obj: Dict[str, Any]) -> None:
    """One JSON line on stdout (the result channel)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def ready(url: str) -> None:
    """A server's first stdout line."""
    sys.stdout.write(url + "\n")
    sys.stdout.flush()


def percentile(sorted_values: List[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def raise_nofile(target: Optional[int] = None) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (or ``target``); returns the new soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if target is None else min(hard, max(soft, target))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_stats(pid: int) -> Dict[str, float]:
    """CPU seconds (user+system, all threads), RSS bytes, threads and open fds of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return {"cpu_s": (utime + stime) / tick, "rss": float(rss), "threads": float(threads), "fds": float(fds)}
