"""Run one wsfast fuzz target under atheris (libFuzzer).

    python fuzz/run.py TARGET [libFuzzer options...]     e.g. -max_total_time=60 corpus/dir

TARGET is one of: server_handshake, client_handshake, server_frames, client_frames,
differential. Choose the build with WSFAST_NO_EXTENSIONS=1 (pure Python) before running.
"""

from __future__ import annotations

import os
import sys

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports():
    import harness  # noqa: E402

    import wsfast  # noqa: E402,F401


def main() -> None:
    """Pick the target named by argv[1] and hand the rest of argv to libFuzzer."""
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    name = sys.argv.pop(1)
    targets = dict(harness.run_targets())
    if name not in targets:
        sys.exit(f"unknown target {name!r}; one of {', '.join(targets)}")
    target = targets[name]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
