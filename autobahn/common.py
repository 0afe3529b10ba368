"""Shared plumbing of the Autobahn scripts: paths, case selection, processes, run records.

Not a public module; ``server.py``, ``client.py``, ``check.py`` and ``report.py`` import it
(they run as scripts, so this directory is on ``sys.path``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPORTS = HERE / "reports"
EXPECTED = HERE / "expected_deviations.json"

#: Cases in the full suite with kosoku 0.1.0 (upstream v25.10.1, 9.9.1 disabled).
FULL_SUITE = 517
#: Verdicts that count as a strict pass, for ``behavior`` and ``behaviorClose`` alike.
STRICT_PASS = ("OK", "INFORMATIONAL")
#: The kernel twins (``wsfast._speedups.IMPLEMENTATION``) and the environment selecting each:
#: "cython" *requires* the compiled kernels, so a missing build fails the run instead of
#: silently testing the Python twin twice.
IMPLS: Dict[str, Dict[str, str]] = {
    "cython": {"WSFAST_REQUIRE_EXTENSIONS": "1", "WSFAST_NO_EXTENSIONS": ""},
    "python": {"WSFAST_NO_EXTENSIONS": "1", "WSFAST_REQUIRE_EXTENSIONS": ""},
}


def all_case_ids() -> List[str]:
    """Every case id kosoku knows, in run order."""
    import kosoku.cases

    return list(kosoku.cases.CASES)


def _matcher(pattern: str):
    """kosoku's (and upstream Autobahn's) case pattern rule: without ``*`` an exact id; with
    ``*`` a regex where ``*`` is any run of characters, anchored at the start only (``re.match``),
    so ``12.*.1`` also takes 12.1.10-12.1.18. Measured against kosoku 0.1.0's /getCaseCount."""
    if not _PATTERN.fullmatch(pattern):
        raise ValueError(f"case pattern {pattern!r}: only digits, '.' and '*' are supported")
    if "*" not in pattern:
        return lambda case_id: case_id == pattern
    rx = re.compile(re.escape(pattern).replace(r"\*", ".*"))
    return lambda case_id: rx.match(case_id) is not None


_PATTERN = re.compile(r"[0-9.*]+")


def select_cases(include: Sequence[str] = (), exclude: Sequence[str] = ()) -> List[str]:
    """The case ids a kosoku ``-i``/``-x`` selection runs, in run order (excludes win)."""
    inc = [_matcher(p) for p in include]
    exc = [_matcher(p) for p in exclude]
    return [
        c
        for c in all_case_ids()
        if (not inc or any(m(c) for m in inc)) and not any(m(c) for m in exc)
    ]


def describe_selection(include: Sequence[str], exclude: Sequence[str]) -> str:
    if not include and not exclude:
        return "full suite"
    parts = []
    if include:
        parts.append("only " + " ".join(include))
    if exclude:
        parts.append("without " + " ".join(exclude))
    return ", ".join(parts)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_listening(host: str, port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Wait until something accepts TCP on host:port; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the process under test exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


def stop(proc: Optional[subprocess.Popen], grace: float = 5.0) -> None:
    """Terminate one process we started (by its own handle), then kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def python_env(impl: str) -> Dict[str, str]:
    """Environment for a process under test: the working tree first on the path, the twin set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    for key, value in IMPLS[impl].items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def probe_implementation(python: str, impl: str) -> str:
    """What ``wsfast._speedups.IMPLEMENTATION`` says under the environment for ``impl``."""
    out = subprocess.run(
        [python, "-c", "import wsfast, wsfast._speedups as s; print(s.IMPLEMENTATION, wsfast.__version__)"],
        env=python_env(impl),
        cwd=str(ROOT),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"wsfast does not import with the {impl} kernels:\n{out.stderr.strip()}")
    actual, version = out.stdout.split()
    if actual != impl:
        raise RuntimeError(f"asked for the {impl} kernels, wsfast runs {actual}")
    return version


def runner_command(python: str, runner: str) -> List[str]:
    """The kosoku command line: the patched wrapper (default) or the stock CLI."""
    if runner == "patched":
        return [python, str(HERE / "kosoku_patched.py")]
    if runner == "kosoku":
        return [python, "-c", "import sys; sys.argv[0] = 'kosoku'; from kosoku._cli import main; main()"]
    raise ValueError(f"unknown runner {runner!r}")


def selection_args(include: Sequence[str], exclude: Sequence[str]) -> List[str]:
    args: List[str] = []
    for pattern in include:
        args += ["-i", pattern]
    for pattern in exclude:
        args += ["-x", pattern]
    return args


def default_timeout(selected: Sequence[str], impl: str) -> int:
    """A bound for a whole kosoku run: generous, but it ends a hung run (kosoku has none)."""
    heavy = sum(1 for c in selected if c.startswith(("12.", "13.")))
    light = len(selected) - heavy
    seconds = 120 + light + heavy * 8  # measured: 12.x/13.x are ~96 % of a full run
    return int(seconds * (2 if impl == "python" else 1))


def clear_outdir(outdir: Path) -> None:
    """Empty a report directory (only the files kosoku and we write there)."""
    outdir.mkdir(parents=True, exist_ok=True)
    for entry in outdir.iterdir():
        if entry.is_file() and entry.suffix in (".json", ".html", ".log", ".css", ".js", ".txt"):
            entry.unlink()


def write_run_record(outdir: Path, record: dict) -> None:
    record = dict(record)
    record.setdefault("finished", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    record.setdefault("platform", f"{platform.python_implementation()} {platform.python_version()} {platform.machine()}")
    # The deflate backend the run forced (inherited by the process under test), if any.
    record.setdefault("wsfast_deflate", os.environ.get("WSFAST_DEFLATE") or "default")
    try:
        from importlib.metadata import version

        record.setdefault("kosoku", version("kosoku"))
    except Exception:  # pragma: no cover - kosoku not installed as a distribution
        record.setdefault("kosoku", "unknown")
    (outdir / "run.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_run_record(outdir: Path) -> dict:
    path = outdir / "run.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def tee(proc: subprocess.Popen, log, prefix: str = "") -> None:
    """Copy a child's merged output to our stdout and to ``log`` until it closes."""
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        log.flush()
        sys.stdout.write(prefix + line)
        sys.stdout.flush()
