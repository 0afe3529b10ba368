"""Regenerate the README "Conformance" section from the Autobahn reports.

    python autobahn/report.py            # write README.md (between the markers) + CONFORMANCE.md
    python autobahn/report.py --stdout   # print only, write nothing (what CI does)

Reads every ``autobahn/reports/*/`` run (``index.json`` + ``run.json``), judges it as
``check.py`` does, and writes counts per behaviour for each server/client and kernel build,
the explained deviations (``expected_deviations.json``) and anything not yet explained. The
section goes between ``<!-- conformance:start -->`` and ``<!-- conformance:end -->`` in the
top-level README.md; without those markers it is printed to stdout. It is always written to
``autobahn/CONFORMANCE.md`` as well.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import check
import common

START = "<!-- conformance:start -->"
END = "<!-- conformance:end -->"
README = common.ROOT / "README.md"
STANDALONE = common.HERE / "CONFORMANCE.md"

_ORDER = {"server": 0, "client": 1}
_IMPL_ORDER = {"cython": 0, "python": 1}
_VERDICTS = ["OK", "INFORMATIONAL", "NON-STRICT", "UNIMPLEMENTED", "FAILED", "ERROR",
             "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT", check.MISSING]


def _counts(counter) -> str:
    keys = [k for k in _VERDICTS if counter.get(k)] + sorted(k for k in counter if k not in _VERDICTS)
    return ", ".join(f"{k} {counter[k]}" for k in keys)


def build(outdirs: List[Path], expected_path: Path) -> str:
    expected = check.load_expected(expected_path)
    results = [check.check_run(d, expected) for d in outdirs]
    results.sort(key=lambda r: (_ORDER.get(r.record.get("kind", ""), 9), r.record.get("name", ""),
                                _IMPL_ORDER.get(r.impl, 9), r.outdir.name))
    versions = sorted({f"wsfast {r.record['wsfast']}" for r in results if r.record.get("wsfast")})
    kosoku = sorted({r.record.get("kosoku", "?") for r in results})
    dates = sorted(r.record.get("finished", "")[:10] for r in results if r.record.get("finished"))

    lines = [
        "## Conformance",
        "",
        "The [Autobahn TestSuite](https://github.com/crossbario/autobahn-testsuite) cases, run with "
        f"kosoku {', '.join(kosoku)} (no Docker), against each wsfast server and client and both kernel "
        "builds (`cython`: compiled kernels; `python`: the pure-Python twins, `WSFAST_NO_EXTENSIONS=1`). "
        "Judged **strictly**: a case passes only if `behavior` and `behaviorClose` are each `OK` or "
        "`INFORMATIONAL`. Regenerate with `autobahn/run_all.sh`; details in `autobahn/README.md`.",
        "",
        "| Under test | Kernels | Cases | Strict | behavior | behaviorClose |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        rec = r.record
        what = f"{rec.get('kind', '?')} `{rec.get('name', r.outdir.name)}`"
        selection = common.describe_selection(rec.get("include", []), rec.get("exclude", []))
        strict = f"**{r.strict}/{r.total}**" if r.ok else f"{r.strict}/{r.total} ⚠"
        impl = r.impl or "?"
        deflate = r.record.get("wsfast_deflate", "default")
        if deflate != "default":
            impl += f", {deflate}"  # the deflate backend forced for the run (WSFAST_DEFLATE)
        lines.append(f"| {what} | {impl} | {r.total} ({selection}) | {strict} | "
                     f"{_counts(r.behavior)} | {_counts(r.behavior_close)} |")
    lines.append("")
    described = []
    for r in results:
        rec = r.record
        key = (rec.get("kind"), rec.get("name"))
        if key not in described and rec.get("description"):
            described.append(key)
            lines.append(f"- {rec['kind']} `{rec['name']}`: {rec['description']}.")
    lines.append("")

    lines.append("### Deviations")
    lines.append("")
    entries = [(t, cid, e) for t, cases in sorted(expected.items()) for cid, e in
               sorted(cases.items(), key=lambda kv: check._key(kv[0]))]
    if not entries:
        lines.append("None: no case is allowed to deviate (`autobahn/expected_deviations.json` is empty).")
    for target, case_id, e in entries:
        impls = e.get("impls")
        only = f" ({', '.join(impls)} only)" if impls else ""
        lines.append(f"- **{target} {case_id}**{only}: behavior {e['behavior']}, behaviorClose "
                     f"{e['behaviorClose']}. {e['reason']} Evidence: {e['evidence']}")
    unexplained = [(r, p) for r in results for p in r.problems]
    if unexplained:
        lines.append("")
        lines.append("Not explained yet (`autobahn/check.py` fails on these):")
        lines.append("")
        for r, p in unexplained:
            lines.append(f"- {r.outdir.name}: {p}")
    lines.append("")
    stamp = f"Reports of {dates[0]}" + (f" to {dates[-1]}" if dates and dates[-1] != dates[0] else "") if dates else ""
    lines.append(f"<sub>{stamp}, {', '.join(versions)}.</sub>" if stamp else "")
    return "\n".join(lines).rstrip() + "\n"


def splice(text: str, section: str) -> Optional[str]:
    """``text`` with the section between the markers replaced, or None without markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return None
    return text[: start + len(START)] + "\n" + section + text[end:]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdirs", nargs="*", help="report directories (default: all in autobahn/reports)")
    parser.add_argument("--expected", default=str(common.EXPECTED))
    parser.add_argument("--readme", default=str(README), help="the README with the markers")
    parser.add_argument("--stdout", action="store_true", help="print the section, write nothing")
    args = parser.parse_args(argv)

    outdirs = [Path(d) for d in args.outdirs] or sorted(p.parent for p in common.REPORTS.glob("*/run.json"))
    if not outdirs:
        print("no reports: run autobahn/server.py / client.py first", file=sys.stderr)
        return 1
    section = build(outdirs, Path(args.expected))
    if args.stdout:
        sys.stdout.write(section)
        return 0
    STANDALONE.write_text("<!-- generated by autobahn/report.py from autobahn/reports/; do not edit -->\n\n"
                          + section)
    readme = Path(args.readme)
    updated = splice(readme.read_text(), section) if readme.exists() else None
    if updated is None:
        sys.stdout.write(section)
        print(f"\n(no {START} / {END} markers in {readme}: section printed above and written to "
              f"{STANDALONE.relative_to(common.ROOT)})", file=sys.stderr)
    else:
        readme.write_text(updated)
        print(f"updated {readme} and {STANDALONE.relative_to(common.ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
