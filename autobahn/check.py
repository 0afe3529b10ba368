"""Judge Autobahn reports strictly against the checked-in list of expected deviations.

    python autobahn/check.py                               # every run in autobahn/reports/
    python autobahn/check.py autobahn/reports/server-main-cython [...]
    python autobahn/check.py DIR -i '6.*'                  # override the recorded selection

A case passes only if ``behavior`` and ``behaviorClose`` are each ``OK`` or
``INFORMATIONAL``. Anything else (``NON-STRICT``, ``UNIMPLEMENTED``, ``FAILED``, ``ERROR``,
``WRONG CODE``, ``UNCLEAN``, a missing case) is a deviation, and every deviation must be
listed in ``expected_deviations.json`` under the run's target (``server-<name>`` or
``client-<name>``) with the exact verdicts, a one-line reason and the evidence. A listed
deviation that now passes fails the check as well ("stale"): the list can only shrink, and
whoever fixes a deviation deletes its entry.

The set of cases must be exactly the selection the run recorded in ``run.json`` (517 for
the full suite with kosoku 0.1.0): a report with cases missing or extra fails.

Exit status: 0 when every run is exactly as expected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import common

MISSING = "MISSING"


def load_expected(path: Path) -> Dict[str, Dict[str, dict]]:
    """``{target: {case_id: entry}}``, validated: each entry has verdicts, reason, evidence."""
    data = json.loads(path.read_text())
    out: Dict[str, Dict[str, dict]] = {}
    for target, cases in data.items():
        if target.startswith("_"):
            continue  # comments
        for case_id, entry in cases.items():
            for field in ("behavior", "behaviorClose", "reason", "evidence"):
                if not entry.get(field):
                    raise SystemExit(f"{path}: {target} {case_id}: '{field}' is required")
            impls = entry.get("impls", sorted(common.IMPLS))
            if not set(impls) <= set(common.IMPLS):
                raise SystemExit(f"{path}: {target} {case_id}: unknown impls {impls}")
        out[target] = cases
    return out


def strict_pass(behavior: str, close: str) -> bool:
    return behavior in common.STRICT_PASS and close in common.STRICT_PASS


def case_detail(outdir: Path, entry: dict) -> str:
    """The case report's own words: ``result`` and ``resultClose``."""
    report = entry.get("reportfile")
    if not report or not (outdir / report).exists():
        return ""
    try:
        data = json.loads((outdir / report).read_text())
    except (OSError, ValueError):
        return ""
    parts = [data.get("result") or "", data.get("resultClose") or ""]
    return " | ".join(p.strip().replace("\n", " ")[:300] for p in parts if p)


class RunResult:
    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.record = common.read_run_record(outdir)
        self.problems: List[str] = []  # unexpected results: the check fails if any
        self.expected_deviations: List[str] = []
        self.behavior = Counter()
        self.behavior_close = Counter()
        self.strict = 0
        self.total = 0
        self.target = ""  # server-NAME / client-NAME: the key in expected_deviations.json
        self.impl = ""
        self.agent = ""
        self.selection = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def check_run(
    outdir: Path,
    expected: Dict[str, Dict[str, dict]],
    include: Optional[List[str]] = None,
    exclude: Optional[List[str]] = None,
) -> RunResult:
    res = RunResult(outdir)
    record = res.record
    kind, name, impl = record.get("kind"), record.get("name"), record.get("impl")
    if not (kind and name and impl):
        # A report made by hand: name it after its directory, server-NAME-IMPL / client-NAME-IMPL.
        parts = outdir.name.split("-")
        if len(parts) >= 3 and parts[0] in ("server", "client") and parts[-1] in common.IMPLS:
            kind, name, impl = parts[0], "-".join(parts[1:-1]), parts[-1]
        else:
            res.problems.append("no run.json and the directory is not named server|client-NAME-IMPL")
            return res
    target = f"{kind}-{name}"
    res.target, res.impl = target, impl
    if record.get("timed_out"):
        res.problems.append("the run timed out (run.json): the report is incomplete or missing")
    if record.get("server_died") is not None:
        res.problems.append(f"the server exited during the run with {record['server_died']}")

    index_path = outdir / "index.json"
    if not index_path.exists():
        res.problems.append(f"no {index_path}")
        return res
    index = json.loads(index_path.read_text())
    if len(index) != 1:
        res.problems.append(f"index.json has {len(index)} agents ({', '.join(index)}), expected one")
        return res
    (agent, cases), = index.items()
    res.agent = agent

    if include is None and exclude is None:
        include, exclude = record.get("include", []), record.get("exclude", [])
    include, exclude = include or [], exclude or []
    res.selection = common.describe_selection(include, exclude)
    selected = common.select_cases(include, exclude)
    if not include and not exclude and len(selected) != common.FULL_SUITE:
        res.problems.append(f"kosoku knows {len(selected)} cases, not the {common.FULL_SUITE} of the full suite")
    res.total = len(selected)

    listed = {cid: e for cid, e in expected.get(target, {}).items()
              if impl in e.get("impls", sorted(common.IMPLS))}
    extras = sorted(set(cases) - set(selected), key=_key)
    if extras:
        shown = ", ".join(extras[:8]) + (", ..." if len(extras) > 8 else "")
        res.problems.append(f"{len(extras)} case(s) in the report but not in the selection: {shown}")
    for case_id in selected:
        entry = cases.get(case_id)
        if entry is None:
            behavior = close = MISSING
            detail = "not in index.json"
        else:
            behavior, close = entry.get("behavior", MISSING), entry.get("behaviorClose", MISSING)
            detail = ""
        res.behavior[behavior] += 1
        res.behavior_close[close] += 1
        passed = strict_pass(behavior, close)
        res.strict += passed
        want = listed.get(case_id)
        verdict = f"behavior={behavior} behaviorClose={close}"
        if want is None:
            if not passed:
                detail = detail or case_detail(outdir, entry or {})
                res.problems.append(f"{case_id}: UNEXPECTED {verdict}" + (f" — {detail}" if detail else ""))
        elif passed:
            res.problems.append(f"{case_id}: STALE expected deviation, now passes ({verdict}): "
                                f"delete it from expected_deviations.json [{target}]")
        elif (behavior, close) != (want["behavior"], want["behaviorClose"]):
            detail = detail or case_detail(outdir, entry or {})
            res.problems.append(f"{case_id}: CHANGED {verdict}, expected behavior={want['behavior']} "
                                f"behaviorClose={want['behaviorClose']}" + (f" — {detail}" if detail else ""))
        else:
            res.expected_deviations.append(f"{case_id}: {verdict} (expected: {want['reason']})")
    return res


def _key(case_id: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in case_id.split(".") if p.isdigit())


def summarize(res: RunResult) -> str:
    rec = res.record
    head = f"{res.outdir.name}: "
    if res.total:
        head += (f"{res.strict}/{res.total} strict"
                 f" ({res.selection}"
                 f"{', %.0f s' % rec['wall_seconds'] if rec.get('wall_seconds') else ''})")
    lines = [head]
    if res.behavior:
        lines.append("  behavior:      " + ", ".join(f"{k} {v}" for k, v in res.behavior.most_common()))
        lines.append("  behaviorClose: " + ", ".join(f"{k} {v}" for k, v in res.behavior_close.most_common()))
    for line in res.expected_deviations:
        lines.append("  expected  " + line)
    for line in res.problems:
        lines.append("  FAIL      " + line)
    lines.append("  => " + ("OK" if res.ok else f"{len(res.problems)} unexpected result(s)"))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdirs", nargs="*", help="report directories (default: all in autobahn/reports)")
    parser.add_argument("--expected", default=str(common.EXPECTED), help="expected deviations JSON")
    parser.add_argument("-i", "--include", action="append", metavar="CASE",
                        help="the selection the run used (default: from run.json)")
    parser.add_argument("-x", "--exclude", action="append", metavar="CASE")
    args = parser.parse_args(argv)

    expected = load_expected(Path(args.expected))
    outdirs = [Path(d) for d in args.outdirs] or sorted(
        p.parent for p in common.REPORTS.glob("*/run.json")
    )
    if not outdirs:
        print("no reports to check", file=sys.stderr)
        return 1
    failed = 0
    for outdir in outdirs:
        res = check_run(outdir, expected, args.include, args.exclude)
        print(summarize(res))
        failed += not res.ok
    print(f"{len(outdirs) - failed}/{len(outdirs)} runs as expected")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
