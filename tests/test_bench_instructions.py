"""The driver of ``benchmarks/instructions.py`` without callgrind: each server it counts serves its path.

Counting needs valgrind and minutes, so it lives in ``make bench``; this runs the inner driver (the part
callgrind watches) for a few requests, which checks every response byte for byte, for our server and for
uvicorn's own protocol serving the peers' apps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.harness import ROOT

SCRIPT = ROOT / "benchmarks" / "instructions.py"
APPS = ROOT / "benchmarks" / "apps"


def inner(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the inner driver for 20 requests after 5 (as ``count`` runs it, less valgrind)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{APPS}"}
    cmd = [sys.executable, str(SCRIPT), "--inner", "--requests", "20", "--warmup", "5", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "args",
    [
        ("--path", "/predict", "--http", "httptools"),
        ("--path", "/predict", "--http", "httptools", "--access-log"),  # each response with its own id
        ("--path", "/predict_ctx", "--http", "httptools"),
        ("--path", "/predict", "--http", "uvicorn"),
        ("--path", "/predict", "--http", "uvicorn", "--app", "raw_asgi:app"),
        ("--path", "/hello", "--http", "uvicorn", "--app", "raw_asgi:app"),
        ("--path", "/hello", "--http", "uvicorn", "--app", "fastapi_app:app"),
        ("--path", "/predict", "--http", "uvicorn", "--app", "fastapi_app:app"),
        ("--path", "/stream", "--http", "uvicorn"),
    ],
)
def test_each_server_serves_the_counted_path(args):
    run = inner(*args)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["requests"] == 20
    assert report["response_bytes"] > 100  # a head and the expected body


def test_a_wrong_answer_fails_the_run():
    # raw_asgi.py serves no stream: the driver must refuse its answer, not count it.
    run = inner("--path", "/stream", "--http", "uvicorn", "--app", "raw_asgi:app")
    assert run.returncode != 0
    assert "unexpected response" in run.stderr
