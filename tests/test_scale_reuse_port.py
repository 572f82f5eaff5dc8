"""``--reuse-port``: a listening socket per worker, connections spread by the kernel, draining as before."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx

from tests.conftest import start
from tests.test_lifecycle import children, wait_for

TARGET = "tests.apps.scale_svc:Slow"


def _listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:``port`` (state 0A in /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1] == want and r.split()[3] == "0A")


def _in_progress(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("asgiserve_request_in_progress{")
    )


def _pids(url: str, n: int) -> set[int]:
    return {httpx.post(url + "/pid", timeout=5).json() for _ in range(n)}  # a fresh connection each


def test_each_worker_listens_and_serves(tmp_path: Path) -> None:
    server = start("asgiserve", TARGET, tmp_path, "--workers", "3", "--reuse-port")
    try:
        assert wait_for(lambda: len(children(server.proc.pid)) == 3)
        assert wait_for(lambda: _listeners(server.port) == 3)
        workers = children(server.proc.pid)
        assert _pids(server.url, 60) == workers  # the kernel's hash reached every worker
    finally:
        assert server.stop() == 0
    assert _listeners(server.port) == 0


def test_the_shared_socket_is_one_listener(tmp_path: Path) -> None:
    server = start("asgiserve", TARGET, tmp_path, "--workers", "2")
    try:
        assert wait_for(lambda: len(children(server.proc.pid)) == 2)
        assert _listeners(server.port) == 1
    finally:
        assert server.stop() == 0


def test_reuse_port_drains_in_flight_requests_and_restarts(tmp_path: Path) -> None:
    server = start("asgiserve", TARGET, tmp_path, "--workers", "2", "--reuse-port")
    try:
        assert wait_for(lambda: len(children(server.proc.pid)) == 2)
        victim = min(children(server.proc.pid))  # a worker that dies is replaced, with a socket of its own
        os.kill(victim, signal.SIGKILL)
        assert wait_for(
            lambda: len(children(server.proc.pid)) == 2 and victim not in children(server.proc.pid)
        )
        assert wait_for(lambda: _listeners(server.port) == 2)
        answers: list[httpx.Response] = []
        calls = [
            threading.Thread(
                target=lambda: answers.append(
                    httpx.post(server.url + "/slow", json={"seconds": 3.0}, timeout=10)
                )
            )
            for _ in range(4)
        ]
        for c in calls:
            c.start()
        assert wait_for(lambda: _in_progress(server.url) == 4, timeout=2.5)  # every call is in flight
        server.proc.send_signal(signal.SIGTERM)
        for c in calls:
            c.join(10)
        assert [r.status_code for r in answers] == [200] * 4
        assert server.proc.wait(15) == 0
    finally:
        server.stop()
