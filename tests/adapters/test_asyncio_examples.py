"""examples/fastapi_app.py under uvicorn with wsfast's class, and examples/asyncio_client_server.py."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fastapi_example() -> None:
    pytest.importorskip("fastapi")
    from tests.adapters.test_uvicorn import Running
    from wsfast.asyncio import connect
    from wsfast.exceptions import ConnectionClosedOK, InvalidStatus

    app = _load("fastapi_app").app

    async def main(url: str) -> None:
        with pytest.raises(InvalidStatus) as info:
            await connect(url + "/ws/lobby?token=wrong")
        assert info.value.status == 403
        ws = await connect(url + "/ws/lobby?token=secret")
        await ws.send("hi")
        assert await ws.recv() == "[lobby] hi"
        await ws.send("/close")
        with pytest.raises(ConnectionClosedOK) as closed:
            await ws.recv()
        assert (closed.value.code, closed.value.reason) == (1000, "bye")

    with Running(app) as r:
        asyncio.run(asyncio.wait_for(main(r.url), 30))


def test_asyncio_client_server_example() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "asyncio_client_server.py")],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("async face: hello (ping ")
    assert lines[1] == "callback face: hello from a handler"
