"""Fixtures of the interop suite: the Node peers' install, Chromium, a per-test watchdog.

Every test in tests/interop/ is marked ``interop`` (select with ``-m interop``, leave out
with ``-m "not interop"``).
"""

from __future__ import annotations

import faulthandler
import fcntl
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: No interop test may take longer than this (seconds).
TEST_TIMEOUT = float(os.environ.get("WSFAST_INTEROP_TIMEOUT", "30"))
CHROMIUM = "/usr/bin/chromium"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.interop)


class InteropTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _watchdog():
    """Fail a test that runs past TEST_TIMEOUT (every wait is bounded anyway; this is the
    backstop), and dump the stacks and exit if even that does not get through."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise InteropTimeout(f"interop test exceeded {TEST_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    faulthandler.dump_traceback_later(TEST_TIMEOUT + 30, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` binary, with tests/interop/node_modules/ws installed (``npm install``
    from tests/interop/package.json on first use)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node tests need `node` and `npm` on PATH (install Node.js >= 18)")
    marker = HERE / "node_modules" / "ws" / "package.json"
    if not marker.exists():
        # A lock, so that parallel pytest processes do not run npm in the same folder at once.
        with open(HERE / ".npm-install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not marker.exists():
                try:
                    proc = subprocess.run(
                        [npm, "install", "--no-audit", "--no-fund"],
                        cwd=HERE,
                        capture_output=True,
                        timeout=300,
                        env={**os.environ, "npm_config_update_notifier": "false"},
                    )
                except subprocess.TimeoutExpired:
                    pytest.fail("`npm install` in tests/interop/ took more than 300 s")
                if proc.returncode != 0 or not marker.exists():
                    pytest.fail(
                        f"`npm install --no-audit --no-fund` in {HERE} failed ({proc.returncode}):\n"
                        f"{proc.stdout.decode(errors='replace')}\n{proc.stderr.decode(errors='replace')}"
                    )
    return node


@pytest.fixture(scope="session")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is absent: `apt-get install -y chromium` (Debian) to run the browser test")
    return CHROMIUM
