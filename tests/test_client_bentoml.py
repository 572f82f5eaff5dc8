"""Wire compatibility with BentoML, both ways: asgiserve's clients against a real BentoML server, and
``bentoml.SyncHTTPClient`` against asgiserve.

BentoML pins many packages, so it lives in its own virtualenv (``.venv-bentoml``, created here on first
use and reused); the tests are skipped only when it cannot be installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import asgiserve
from tests.client_helpers import start_svc
from tests.conftest import ROOT, RUNNERS, free_port

VENV = ROOT / ".venv-bentoml"
PY = VENV / "bin" / "python"


def bentoml_python() -> Path:
    """The interpreter of a virtualenv with BentoML (and Pillow, which its client needs for files)."""
    check = [str(PY), "-c", "import bentoml, PIL"]
    if PY.exists() and subprocess.run(check, capture_output=True, timeout=120).returncode == 0:
        return PY
    try:
        if not PY.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        subprocess.run(
            [str(PY), "-m", "pip", "install", "-q", "bentoml", "pillow"],
            check=True,
            timeout=900,
            capture_output=True,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"BentoML cannot be installed here: {exc}")
    if subprocess.run(check, capture_output=True, timeout=120).returncode != 0:
        pytest.skip("BentoML installed but cannot be imported")
    return PY


@pytest.fixture(scope="module")
def bento_py() -> Path:
    return bentoml_python()


@pytest.fixture
def bento_server(bento_py, tmp_path):
    port = free_port()
    log = tmp_path / "bentoml.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENTOML_HOME": str(tmp_path / "bentoml-home")}
    cmd = [str(bento_py), "-m", "bentoml", "serve", "tests.apps.client_bentoml_svc:BentoSvc"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # Our own readiness wait (with backoff) is part of what is tested here.
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with asgiserve.SyncHTTPClient(url, server_ready_timeout=2) as client:
                    if client.is_ready():
                        break
            except asgiserve.ServiceUnavailable:
                pass
        if proc.poll() is not None or time.monotonic() >= deadline:
            pytest.fail(f"BentoML server did not start:\n{log.read_text(errors='replace')}")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.mark.timeout(1200)
def test_asgiserve_clients_against_bentoml(bento_server, tmp_path):
    img = tmp_path / "cat.png"
    img.write_bytes(b"PNGDATA")
    with asgiserve.SyncHTTPClient(bento_server) as client:
        assert client.is_ready()
        assert client.summarize(text="First sentence. Second.") == "First sentence."
        assert client.predict(data={"name": "Alice", "age": 30}) == {
            "received": {"name": "Alice", "age": 30},
            "keys": ["age", "name"],
        }
        assert client.add(a=2, b=3) == 5
        out = client.generate(img=img, scale=2)
        assert out.read_bytes() == b"PNGDATA" * 2 and out.name.endswith("cat.png")
        # A text stream's chunk boundaries are TCP's to choose (a busy machine coalesces them).
        assert "".join(client.stream_data(n=3)) == "chunk0;chunk1;chunk2;"
        with pytest.raises(TypeError):
            client.add(b=1)
        with pytest.raises(asgiserve.InvalidArgument):
            client.add(a="x")

    async def main():
        async with asgiserve.AsyncHTTPClient(bento_server) as client:
            results = await asyncio.gather(*(client.add(a=i, b=1) for i in range(50)))
            chunks = [c async for c in client.stream_data(n=2)]
            return results, chunks

    results, chunks = asyncio.run(main())
    assert results == [i + 1 for i in range(50)] and "".join(chunks) == "chunk0;chunk1;"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("runner", RUNNERS)
def test_bentoml_client_against_asgiserve(bento_py, run_server, runner, tmp_path):
    server = start_svc(run_server, runner)
    upload = tmp_path / "up.png"
    upload.write_bytes(b"IMG")
    script = ROOT / "tests" / "apps" / "client_bentoml_calls.py"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(bento_py), str(script), server.url, str(upload)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ready"] is True
    assert out["summarize"] == "First sentence."
    assert out["predict"] == {"received": {"name": "Alice", "age": 30}, "keys": ["age", "name"]}
    assert out["add"] == 5
    name, content = out["generate"]
    assert name.endswith("out-up.png") and content == "IMGIMG"
    assert out["stream"] == ["chunk0;", "chunk1;", "chunk2;"]
    kind, message = out["error"]
    assert kind == "InvalidArgument" and "$.a" in message
