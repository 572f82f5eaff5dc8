"""Shared fixtures: start real server processes on 127.0.0.1 and wait until they answer /readyz."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every end-to-end test of the app runs on each of these servers.
RUNNERS = ["asgiserve", "asgiserve-h11", "uvicorn"]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProc:
    """A server subprocess listening on 127.0.0.1:port."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    """Poll /readyz until 200, failing fast if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server not ready in {timeout}s:\n{log.read_text(errors='replace')}")


def start(
    runner: str, target: str, tmp: Path, *extra: str, env: dict[str, str] | None = None, ready: bool = True
) -> ServerProc:
    """Start ``target`` under ``runner`` ("uvicorn" takes module:app, "asgiserve*" takes module:Service).

    "asgiserve-h11" is our server with ``--http h11``.
    """
    port = free_port()
    if runner == "uvicorn":
        cmd = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--no-access-log", "--log-level", "warning", *extra]
    else:
        cmd = [sys.executable, "-m", "asgiserve", target, "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--http", "h11"] if runner == "asgiserve-h11" else []
        cmd += extra
    log = tmp / f"server-{port}.log"
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'examples'}", **(env or {})}
    with log.open("wb") as fh:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
    server = ServerProc(proc, port, log)
    if ready:
        wait_ready(server.url, proc, log)
    return server


@pytest.fixture
def run_server(tmp_path: Path) -> Iterator[object]:
    """Factory fixture: ``run_server(runner, target, *args)``; every server is stopped at teardown."""
    started: list[ServerProc] = []

    def factory(runner: str, target: str, *extra: str, **kw: object) -> ServerProc:
        server = start(runner, target, tmp_path, *extra, **kw)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield factory
    for s in started:
        s.stop()
