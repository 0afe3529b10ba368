"""``python -m wsfast``: the echo server, the client and the bench, run as real processes over
loopback (and the interactive client in a real pseudo-terminal), on every mode this
installation has."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from wsfast import cli
from wsfast._modes import MODES, available_modes

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
MODES_HERE = available_modes()
SERVER_MODES = [n for n, m in MODES_HERE.items() if m.has_server]
CLIENT_MODES = list(MODES_HERE)

pytestmark = pytest.mark.timeout(120)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class EchoServer:
    def __init__(self, *args: str) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [PY, "-m", "wsfast", "echo-server", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=_env(), cwd=str(ROOT),
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        self.url = self.proc.stdout.readline().strip() if ready else ""
        if not self.url.startswith(("ws://", "wss://")):
            self.stop()
            raise AssertionError(f"the echo server printed {self.url!r}, not its URL: {self.stderr()}")

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the echo server did not stop within 20 s of SIGTERM") from None
        finally:
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self.log.close()


@pytest.fixture(params=SERVER_MODES)
def server(request: pytest.FixtureRequest) -> Iterator[EchoServer]:
    s = EchoServer("--mode", request.param, "--ping-interval", "0")
    yield s
    assert s.stop() == 0


def run(*args: str, timeout: float = 60, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "wsfast", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=str(ROOT))


def test_every_registered_mode_imports_here() -> None:
    # uvloop is optional (the uvloop package); every other adapter ships with wsfast.
    missing = set(MODES) - set(MODES_HERE) - {"uvloop"}
    assert not missing, f"modes that do not import: {sorted(missing)}"


@pytest.mark.parametrize("client_mode", CLIENT_MODES)
def test_client_execute_echoes_text_binary_and_ping(server: EchoServer, client_mode: str) -> None:
    r = run("client", server.url, "--mode", client_mode, "-x", "hello", "-x", "/binary 00ff10", "-x", "/ping",
            "-x", "//slash")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["hello", "<binary 3 bytes: 00 ff 10>", "/slash"]
    assert "extensions permessage-deflate" in r.stderr
    assert "pong after" in r.stderr
    assert "closed: 1000 ''" in r.stderr


@pytest.mark.parametrize("client_mode", CLIENT_MODES)
def test_bench_json_counts_every_message(server: EchoServer, client_mode: str) -> None:
    r = run("bench", server.url, "--mode", client_mode, "--size", "32", "--size", "70000",
            "--count", "300", "--round-trips", "50", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["size"] for row in rows] == [32, 70000]
    for row in rows:
        assert row["round_trips"] == 50
        assert row["pipelined_messages"] == 300
        assert row["mismatches"] == 0 and row["error"] is None
        assert row["close_codes"] == [1000]
        assert row["rtt_p50_us"] > 0 and row["msgs_per_s"] > 0


def test_bench_table_and_several_connections(server: EchoServer) -> None:
    r = run("bench", server.url, "--connections", "3", "--count", "200", "--round-trips", "20", "--text")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["mode", "size", "conns"]
    assert lines[2].split()[1:5] == ["32", "B", "t", "3"]
    assert lines[2].split()[-1] == "ok"


def test_client_reads_stdin_lines_until_eof(server: EchoServer) -> None:
    r = run("client", server.url, stdin="one\ntwo\n/close 4001 bye\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["one", "two"]
    assert "closed: 4001 " in r.stderr  # the echo of our close (the server echoes the code)


def test_interactive_client_in_a_pseudo_terminal(server: EchoServer) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI with the terminal as stdin/stdout/stderr
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(PY, [PY, "-m", "wsfast", "client", server.url])
    out = b""

    def read_until(token: bytes, timeout: float = 20) -> None:
        nonlocal out
        end = time.monotonic() + timeout
        while token not in out:
            left = end - time.monotonic()
            assert left > 0, f"{token!r} not seen; got {out!r}"
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break

    try:
        read_until(b"connected to")
        os.write(fd, b"typed in a terminal\n")
        read_until(b"typed in a terminal\r\ntyped in a terminal")  # the tty's echo, then the server's
        os.write(fd, b"\x04")  # Ctrl-D: end of input, a clean close
        read_until(b"closed: 1000")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


def test_tls_echo_server_and_insecure_client(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    s = EchoServer("--certfile", str(pem), "--no-compression")
    try:
        assert s.url.startswith("wss://127.0.0.1:")
        # Verified by default: a self-signed certificate is refused, with a clear error...
        r = run("client", s.url, "-x", "hi")
        assert r.returncode == 1
        assert "TLSError" in r.stderr and "certificate" in r.stderr.lower()
        # ... accepted with the CA, or with --insecure.
        r = run("client", s.url, "--cafile", str(ca_pem), "-x", "secure hello")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["secure hello"]
        assert "extensions none" in r.stderr
        r = run("client", s.url, "--insecure", "-x", "hi")
        assert r.returncode == 0 and r.stdout.splitlines() == ["hi"]
    finally:
        assert s.stop() == 0


def test_size_limit_closes_with_1009() -> None:
    s = EchoServer("--max-size", "10")
    try:
        r = run("client", s.url, "-x", "x" * 11)
        assert "closed: 1009" in r.stderr, r.stderr
        assert r.stdout == ""
    finally:
        assert s.stop() == 0


def test_header_option_reaches_the_server_and_bad_header_is_a_usage_error() -> None:
    s = EchoServer()
    try:
        r = run("client", s.url, "-H", "X-Token: abc", "-x", "ok")
        assert r.returncode == 0 and r.stdout.splitlines() == ["ok"]
        r = run("client", s.url, "-H", "no colon here", "-x", "ok")
        assert r.returncode == 2
        assert "is not 'Name: value'" in r.stderr
    finally:
        assert s.stop() == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_client_errors_name_what_was_wrong() -> None:
    port = _free_port()  # nothing listens there
    r = run("client", f"ws://127.0.0.1:{port}/", "-x", "hi")
    assert r.returncode == 1
    assert "ConnectRefused" in r.stderr
    r = run("client", "http://example.com/", "-x", "hi")
    assert r.returncode == 2
    assert "InvalidURI" in r.stderr or "scheme" in r.stderr
    # An HTTP server that is not a WebSocket server: the status is named.
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    proc = subprocess.Popen([PY, "-m", "wsfast", "client", f"ws://127.0.0.1:{port}/", "-x", "hi"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    conn, _ = lsock.accept()
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    conn.close()
    lsock.close()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "InvalidStatus" in err and "404" in err


def test_unknown_mode_is_a_usage_error() -> None:
    r = run("echo-server", "--mode", "nope")
    assert r.returncode == 2
    assert "unknown mode 'nope'" in r.stderr


def test_info_lists_the_modes() -> None:
    r = run("info")
    assert r.returncode == 0
    for name in MODES_HERE:
        assert name in r.stdout


def test_demo_quick_prints_the_table() -> None:
    modes: List[str] = [m for m in ("blocking", "asyncio") if m in MODES_HERE]
    args = ["demo", "--quick", "--server-mode", SERVER_MODES[0]]
    for m in modes:
        args += ["--client-mode", m]
    r = run(*args, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "echo server (" in r.stdout
    table = [line for line in r.stdout.splitlines() if line.endswith(" ok")]
    assert len(table) == 3 * len(modes)


def test_percentile_interpolates() -> None:
    assert cli.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert cli.percentile([5.0], 0.99) == 5.0
