#!/usr/bin/env python
"""Benchmark wsfast against its peers, side by side in one run.

    python benchmarks/run.py [--quick] [--only GROUP[,GROUP]] [--json PATH] [--markdown PATH]

Groups: ``kernels`` (mask, UTF-8, inflate), ``engine`` (parse/serialize through the sans-IO
engines), ``deflate`` (compressed round trips, plus benchmarks/bench_pmd_memory.py).
Prints ratio tables (wsfast ÷ peer, higher = wsfast faster) with the issue targets marked
MET / NOT MET. No assertion is made on any timing: the exit status is 0 unless a wsfast
implementation produced a wrong result or crashed.

The pure-Python twins (``wsfast-py``): kernels are imported directly (``wsfast._mask_py``…);
for the engine and deflate groups a second process runs with ``WSFAST_NO_EXTENSIONS=1`` and
times ``wsfast-py`` against the same peers there. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)  # benchmark the working tree (with its in-place build)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from _bench import Registry, Settings, environment, run_case  # noqa: E402

GROUPS = ("kernels", "engine", "deflate")
TWIN_GROUPS = ("engine", "deflate")  # wsfast-py measured in a WSFAST_NO_EXTENSIONS=1 process
PMD_MEMORY = os.path.join(HERE, "bench_pmd_memory.py")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def register(groups, quick: bool) -> Registry:
    reg = Registry()
    for g in groups:
        if g == "kernels":
            import _kernels

            _kernels.register(reg, quick)
        elif g == "engine":
            import _engine

            _engine.register(reg, quick)
        elif g == "deflate":
            import _deflate

            _deflate.register(reg, quick)
    return reg


def run_cases(reg: Registry, settings: Settings, relabel=None) -> dict:
    results = {}
    for case in reg.cases:
        if relabel:
            case.impls = {relabel.get(k, k): v for k, v in case.impls.items()}
        t0 = time.perf_counter()
        res = run_case(case, settings)
        results[case.name] = res
        done = ", ".join(f"{k} {v['median_s'] * 1e6:.3g} µs" for k, v in res["impls"].items())
        skip = "; ".join(f"{k}: {v}" for k, v in res["skipped"].items())
        log(f"  {case.name} [{time.perf_counter() - t0:.1f} s]: {done}" + (f"  (skipped {skip})" if skip else ""))
    return results


# ----------------------------------------------------------------------------- formatting


def fmt(x: float) -> str:
    if x != x:
        return "nan"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def ratio(impl: dict, peer: dict):
    """(median ratio, low, high, best): time(peer)/time(impl) of the medians; low/high combine the
    quartiles (q1 of one with q3 of the other); best compares the fastest repeats."""
    return (peer["median_s"] / impl["median_s"], peer["q1_s"] / impl["q3_s"], peer["q3_s"] / impl["q1_s"],
            peer["min_s"] / impl["min_s"])


def engine_overhead_lines(cases, results) -> list:
    """What each engine adds on top of the ``zlib only`` floor, per round trip (medians)."""
    out = []
    for c in cases:
        impls = results[c.name]["impls"]
        floor = impls.get("zlib only")
        if floor is None:
            continue
        per_msg = {k: st["median_s"] / (c.work * 1e3) for k, st in impls.items()}  # work in kmsg
        added = {k: t - per_msg["zlib only"] for k, t in per_msg.items() if k != "zlib only"}
        if added.get("wsfast", 0) <= 0 or "websockets" not in added:
            continue
        parts = ", ".join(f"{k} {added[k] * 1e6:.1f} µs" for k in added)
        out.append(f"- *{c.name}*: engine time on top of zlib per round trip (median − zlib only's median): "
                   f"{parts}; websockets ÷ wsfast = {added['websockets'] / added['wsfast']:.1f}× "
                   f"(zlib only itself: {per_msg['zlib only'] * 1e6:.1f} µs).")
    return out


def md_table(header, rows) -> list:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def twin_source(case_res: dict):
    """Where the wsfast-py numbers of a case come from: this process or the twin process."""
    if "wsfast-py" in case_res["impls"]:
        return case_res["impls"], False
    twin = case_res.get("py_twin")
    if twin and "wsfast-py" in twin["impls"]:
        return twin["impls"], True
    return None, False


def report(env: dict, settings: Settings, reg: Registry, results: dict, groups, pmd: dict | None) -> str:
    lines = []
    peers = ", ".join(f"{k} {v}" for k, v in env["peers"].items() if v) or "none"
    clock = ("process CPU time (time.process_time)" if settings.clock == "cpu"
             else "wall time (time.perf_counter)")
    mode = ("quick (smoke test: numbers are meaningless)" if settings.quick
            else f"full: {settings.repeats} repeats of ~{settings.target:.2f} s per implementation, interleaved")
    mode += f"; clock: {clock}; GC off while timing; malloc: {malloc_mode()}"
    lines += [
        f"## wsfast benchmarks — {env['started']}",
        "",
        f"- Python {env['python']} ({env['python_implementation']}, {env['python_build']}), {env['platform']}",
        f"- CPU: {env['cpu_model']} × {env['cpu_count']} (load average at start: "
        f"{', '.join(f'{x:.2f}' for x in env['loadavg_at_start']) if env['loadavg_at_start'] else 'n/a'})",
        f"- wsfast {env['wsfast_version']} (git {env['git_commit'] or '?'}), kernels: "
        f"**{env['wsfast_implementation']}**, parser: **{env['wsfast_parser_implementation']}**; zlib {env['zlib']}",
        f"- peers: {peers}",
        f"- mode: {mode}",
        "",
    ]
    if env["wsfast_implementation"] != "cython":
        lines += [
            "> **WARNING: the compiled kernels are not active** (not built, or "
            "`WSFAST_NO_EXTENSIONS` is set): every wsfast number below is the pure-Python twins "
            "(`wsfast-py`). Build them: `python setup.py build_ext --inplace`.",
            "",
        ]
    lines += [
        "Ratios are wsfast ÷ peer = time(peer) / time(wsfast) per operation (medians): **higher = wsfast faster**. "
        "`wsfast-py` = the pure-Python twins.",
        "",
    ]
    for group in groups:
        cases = [c for c in reg.cases if c.group == group]
        if not cases:
            continue
        lines.append(f"### {group}")
        lines.append("")
        impl_cols = []
        for c in cases:
            res = results[c.name]
            for k in list(res["impls"]) + (list(res.get("py_twin", {}).get("impls", {})) if res.get("py_twin") else []):
                if k not in impl_cols:
                    impl_cols.append(k)
        order = ["wsfast", "wsfast-py"]
        impl_cols = [k for k in order if k in impl_cols] + [k for k in impl_cols if k not in order]
        peer_cols = [k for k in impl_cols if k not in order]

        # Absolute throughput.
        rows = []
        any_twin_proc = False
        for c in cases:
            res = results[c.name]
            row = [c.name, c.unit]
            for k in impl_cols:
                st = res["impls"].get(k)
                mark = ""
                if st is None and k == "wsfast-py":
                    src, other = twin_source(res)
                    if src is not None:
                        st, mark = src["wsfast-py"], "†"
                        any_twin_proc = True
                if st is None:
                    row.append("—")
                else:
                    row.append(f"{fmt(st['throughput'])} ±{st['spread_pct'] / 2:.0f}%{mark}")
            rows.append(row)
        lines += md_table(["benchmark", "unit"] + impl_cols, rows)
        lines.append("")
        lines.append("Throughput (median), ± = (max − min) / (2 × median) over the repeats."
                     + (" † measured in the `WSFAST_NO_EXTENSIONS=1` process." if any_twin_proc else ""))
        lines.append("")

        # Ratios.
        rows = []
        for c in cases:
            res = results[c.name]
            for impl in order:
                if impl == "wsfast":
                    base, peers_src = res["impls"].get("wsfast"), res["impls"]
                else:
                    src, _ = twin_source(res)
                    base, peers_src = (src or {}).get("wsfast-py"), (src or {})
                if base is None:
                    continue
                row = [c.name, impl]
                for p in peer_cols:
                    st = peers_src.get(p)
                    row.append("—" if st is None else f"{ratio(base, st)[0]:.2f}×")
                rows.append(row)
        if rows and peer_cols:
            lines += md_table(["benchmark", "impl"] + [f"÷ {p}" for p in peer_cols], rows)
        else:
            lines.append("*No ratio: wsfast or every peer is missing (see below).*")
        lines.append("")
        skipped = {}
        for c in cases:
            for k, why in results[c.name]["skipped"].items():
                skipped.setdefault(f"{k}: {why}", []).append(c.name)
            twin = results[c.name].get("py_twin")
            if twin:
                for k, why in twin["skipped"].items():
                    skipped.setdefault(f"{k} (twin process): {why}", []).append(c.name)
        for why, names in skipped.items():
            lines.append(f"- skipped {why} ({', '.join(names)})")
        for n in reg.notes.get(group, []):
            lines.append(f"- {n}")
        by_note: dict = {}
        for c in cases:
            if c.note:
                by_note.setdefault(c.note, []).append(c.name)
        for note, names in by_note.items():
            lines.append(f"- *{', '.join(names)}*: {note}")
        if group == "deflate":
            lines += engine_overhead_lines(cases, results)
        if group == "deflate" and reg.extra.get("deflate_negotiated"):
            for k, v in reg.extra["deflate_negotiated"].items():
                lines.append(f"- negotiated ({k}): `{v}`")
        lines.append("")

    # Targets.
    rows = []
    for t in reg.targets:
        res = results.get(t.case)
        if res is None:
            continue
        if t.impl == "wsfast":
            src = res["impls"]
        else:
            src, _ = twin_source(res)
            src = src or {}
        a, b = src.get(t.impl), src.get(t.peer)
        if a is None or b is None:
            rows.append([t.label, "—", "—", "—", "n/a (not measured)"])
            continue
        r, lo, hi, best = ratio(a, b)
        status = "MET" if r >= t.min_ratio else "NOT MET"
        if lo < t.min_ratio <= hi:
            status += " (borderline)"
        rows.append([t.label, f"{r:.2f}×", f"{lo:.2f}–{hi:.2f}", f"{best:.2f}×", f"**{status}**"])
        t.result = {"ratio": r, "iqr_low": lo, "iqr_high": hi, "best_vs_best": best,  # type: ignore[attr-defined]
                    "status": status}
    if rows:
        lines.append("### targets")
        lines.append("")
        lines += md_table(["target", "median ratio", "IQR range", "best vs best", "status"], rows)
        lines.append("")
        lines.append("Status from the median ratio; *borderline* when the interquartile range of the ratio "
                     "straddles the target (the noise could flip it). *best vs best* = ratio of the fastest repeats.")
        lines.append("")
        if settings.quick:
            lines.append("*Quick mode: too short to judge targets.*")
            lines.append("")

    if pmd is not None:
        lines.append("### permessage-deflate memory (benchmarks/bench_pmd_memory.py)")
        lines.append("")
        if pmd.get("stdout"):
            lines += pmd["stdout"].rstrip().splitlines()
        else:
            lines.append(f"not run: {pmd.get('error')}")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- processes


def run_twin_process(groups, quick: bool, extra_args: list) -> dict:
    """Time wsfast-py (WSFAST_NO_EXTENSIONS=1) against the peers in a second process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "twin.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--only", ",".join(groups), "--_worker", out]
        if quick:
            cmd.append("--quick")
        cmd += extra_args
        env = dict(os.environ, WSFAST_NO_EXTENSIONS="1")
        env.pop("WSFAST_REQUIRE_EXTENSIONS", None)
        log(f"pure-Python twins: {' '.join(cmd[1:])} (WSFAST_NO_EXTENSIONS=1)")
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0 or not os.path.exists(out):
            return {"error": f"twin process exited with {proc.returncode}"}
        with open(out) as f:
            return json.load(f)


def run_pmd_memory(quick: bool) -> dict | None:
    if not os.path.exists(PMD_MEMORY):
        return None
    n = 20 if quick else 1000
    cmd = [sys.executable, PMD_MEMORY, "-n", str(n), "--markdown"]
    log(f"permessage-deflate memory: {' '.join(cmd[1:])}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120 if quick else 600)
    except subprocess.TimeoutExpired:
        return {"cmd": cmd, "error": "timed out"}
    if proc.returncode != 0:
        return {"cmd": cmd, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    return {"cmd": cmd, "stdout": proc.stdout}


def wsfast_errors(results: dict) -> list:
    errs = []
    for name, res in results.items():
        for src in (res, res.get("py_twin") or {}):
            for k, why in src.get("skipped", {}).items():
                if k.startswith("wsfast") and why.startswith("error"):
                    errs.append(f"{name} / {k}: {why}")
    return errs


PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def malloc_mode() -> str:
    pinned = all(os.environ.get(k) == v for k, v in PINNED_MALLOC.items())
    return "pinned (MALLOC_MMAP_THRESHOLD_=256 MiB, MALLOC_TRIM_THRESHOLD_=1 GiB)" if pinned else "glibc default"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny runs: proves the harness works (CI), numbers meaningless")
    ap.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups among {', '.join(GROUPS)}")
    ap.add_argument("--json", metavar="PATH", help="write all results (raw times, environment) as JSON")
    ap.add_argument("--markdown", metavar="PATH", help="also write the Markdown report to PATH")
    ap.add_argument("--no-twins", action="store_true", help="skip the WSFAST_NO_EXTENSIONS=1 process")
    ap.add_argument("--repeats", type=int, help="timed repeats per implementation (default 7, quick 2)")
    ap.add_argument("--target", type=float, help="seconds per timed repeat (default 0.1, quick 0.002)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: process CPU time (default; robust when other jobs share the machine); "
                         "wall: time.perf_counter")
    ap.add_argument("--malloc", choices=("default", "pinned"), default="default",
                    help="default: glibc malloc as users get it (large allocations may come from fresh "
                         "pages: page faults, counted); pinned: re-run with MALLOC_MMAP_THRESHOLD_/"
                         "MALLOC_TRIM_THRESHOLD_ fixed, so 1 MiB messages reuse the heap and the "
                         "large-message cases measure the copies, not the kernel's page zeroing")
    ap.add_argument("--_worker", metavar="OUT", help=argparse.SUPPRESS)
    ap.add_argument("--_budget", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.malloc == "pinned" and os.environ.get("MALLOC_TRIM_THRESHOLD_") != PINNED_MALLOC["MALLOC_TRIM_THRESHOLD_"]:
        # glibc reads these once, at start-up: re-run this process with them (the twin
        # process inherits them).
        os.environ.update(PINNED_MALLOC)
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *(argv or sys.argv[1:])])
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    for g in groups:
        if g not in GROUPS:
            ap.error(f"unknown group {g!r} (choose among {', '.join(GROUPS)})")
    settings = Settings.make(args.quick)
    if args.repeats:
        settings.repeats = max(1, args.repeats)
    if args.target:
        settings.target = args.target
    settings.clock = args.clock
    if args._budget:
        settings.max_total = args._budget
    settings.start()

    from wsfast._speedups import IMPLEMENTATION

    if args._worker:
        if IMPLEMENTATION != "python":
            log("twin worker: WSFAST_NO_EXTENSIONS=1 did not select the pure-Python build")
            return 2
        reg = register([g for g in groups if g in TWIN_GROUPS], args.quick)
        results = run_cases(reg, settings, relabel={"wsfast": "wsfast-py"})
        with open(args._worker, "w") as f:
            json.dump(results, f)
        return 0

    t_start = time.perf_counter()
    env = environment(REPO)
    log(f"wsfast benchmarks: groups {', '.join(groups)}; {'quick' if args.quick else 'full'}; "
        f"kernels {IMPLEMENTATION}; CPU {env['cpu_model']}")
    if IMPLEMENTATION != "cython":
        log("WARNING: the compiled kernels are not active: wsfast is measured as its pure-Python twins")
    reg = register(groups, args.quick)
    results = run_cases(reg, settings, relabel=None if IMPLEMENTATION == "cython" else {"wsfast": "wsfast-py"})

    twin_groups = [g for g in groups if g in TWIN_GROUPS]
    twin_info = None
    if twin_groups and IMPLEMENTATION == "cython" and not args.no_twins:
        extra = (["--repeats", str(args.repeats)] if args.repeats else []) + (
            ["--target", str(args.target)] if args.target else []) + ["--clock", args.clock] + [
            "--_budget", f"{max(settings.max_total / 6, settings.deadline - time.perf_counter()):.0f}"]
        twin = run_twin_process(twin_groups, args.quick, extra)
        if "error" in twin:
            twin_info = twin["error"]
            log(f"pure-Python twins: {twin_info}")
        else:
            for name, res in twin.items():
                if name in results:
                    results[name]["py_twin"] = res

    pmd = run_pmd_memory(args.quick) if "deflate" in groups else None
    text = report(env, settings, reg, results, groups, pmd)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    elapsed = time.perf_counter() - t_start
    errors = wsfast_errors(results)
    if args.json:
        doc = {
            "environment": env,
            "settings": dict(vars(settings), case_budget=settings.case_budget),
            "groups": groups,
            "results": results,
            "targets": [
                {"label": t.label, "case": t.case, "impl": t.impl, "peer": t.peer, "min_ratio": t.min_ratio,
                 **getattr(t, "result", {"status": "n/a"})}
                for t in reg.targets
            ],
            "notes": reg.notes,
            "extra": reg.extra,
            "twin_process_error": twin_info,
            "pmd_memory": pmd,
            "wsfast_errors": errors,
            "elapsed_s": elapsed,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
    log(f"done in {elapsed:.1f} s")
    if errors:
        log("wsfast produced wrong results or crashed:\n  " + "\n  ".join(errors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
