"""Replays of the fuzz corpus: the seeds and every reproducer in fuzz/regressions run through
their atheris target's body (fuzz/harness.py) on the current build. CI runs this file on both
builds, so a finding, once fixed, stays fixed on the compiled and the pure-Python engine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

import harness  # noqa: E402

TARGETS = dict(harness.run_targets())


def _cases() -> list:
    cases = []
    for d in sorted((FUZZ / "seeds").iterdir()):
        for f in sorted(d.iterdir()):
            cases.append(pytest.param(d.name, f, id=f"seed-{d.name}-{f.name}"))
    for f in sorted((FUZZ / "regressions").iterdir()):
        if f.suffix != ".md":
            cases.append(pytest.param(f.name.split("-", 1)[0], f, id=f"regression-{f.name}"))
    return cases


@pytest.mark.parametrize("target, path", _cases())
def test_replay(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
# b"\n": the stray crash-adc83b19... file found at the repo root (it did not reproduce).
@pytest.mark.parametrize("data", [b"", b"\n", b"\x00", b"\xff" * 64, bytes(range(256)) * 4])
def test_odd_inputs(target: str, data: bytes) -> None:
    TARGETS[target](data)


def test_harness_reports_invalid_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """The invariant "every byte we emit is a valid frame" can fail: corrupt the server's
    output and the client-side check reports it."""
    real_pair = harness.pair

    def corrupted_pair(limits: dict, deflate: bool) -> tuple:
        client, server = real_pair(limits, deflate)
        real = server.data_to_send
        server.data_to_send = lambda: [b"\x83\x00"] if real() else []  # reserved opcode 3
        return client, server

    seed = (FUZZ / "seeds" / "server_frames" / "f0").read_bytes()
    monkeypatch.setattr(harness, "pair", corrupted_pair)
    with pytest.raises(harness.Finding, match="emitted invalid frames"):
        harness.frames_target(seed, "server")


def test_harness_reports_event_after_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsfast.events import ConnectionFailed, TextMessage

    conn = harness.pair({}, False)[1]
    conn._events.extend([ConnectionFailed(1002, "x"), TextMessage("late")])
    with pytest.raises(harness.Finding, match="event after ConnectionFailed"):
        harness.Watch(conn, 1024).take()


def test_no_known_signatures_left() -> None:
    # The Content-Length ValueError (issue 10 item 3) is fixed: nothing is skipped any more.
    assert harness.KNOWN_SIGNATURES == []
    assert not harness._known(ValueError("invalid literal for int() with base 10: '\xb2'"))


def test_harness_reports_unbounded_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsfast.events import BinaryMessage

    conn = harness.pair({}, False)[1]
    conn._events.extend([BinaryMessage(bytes(1 << 20))] * 3)
    with pytest.raises(harness.Finding, match="pending"):
        harness.Watch(conn, 1 << 20).take()


@pytest.mark.skipif(os.environ.get("WSFAST_NO_EXTENSIONS") != "1", reason="pure-Python build only")
def test_pure_build_selected() -> None:
    import wsfast._speedups as s

    assert s.PARSER_IMPLEMENTATION == "python"
