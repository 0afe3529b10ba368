"""Fixtures shared by the adapter tests: TLS certificates made by trustme, and thread/socket
leak checks. Every adapter test runs over real loopback sockets."""

from __future__ import annotations

import ssl
import threading
from typing import Iterator, Tuple

import pytest

# The interop suite's `node` fixture (node on PATH, `npm install` of tests/interop once), for
# the adapter tests that talk to a Node `ws` peer.
from tests.interop.conftest import node  # noqa: F401


@pytest.fixture(scope="session")
def tls() -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server_context, client_context): a fresh CA, a certificate for localhost, 127.0.0.1
    and ::1, and a client context that trusts only that CA (verification stays on)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail the test if it leaves threads running (give them a moment to finish)."""
    before = set(threading.enumerate())
    yield
    deadline = 2.0
    import time

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"threads leaked: {extra}")
