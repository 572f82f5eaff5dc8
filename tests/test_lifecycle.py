"""Process lifecycle: SIGTERM drain, prefork workers (serve, restart, stop), startup failure, lifespan."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start
from tests.rawhttp import connect, get, read_all, wait_listening


def children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.update(int(c) for c in text)
    return out


def wait_for(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_sigterm_lets_in_flight_request_finish(tmp_path):
    server = start("asgiserve", "tests.apps.traffic:Unlimited", tmp_path)
    result: dict[str, object] = {}

    def call() -> None:
        r = httpx.post(server.url + "/sleep", json={"seconds": 1.5}, timeout=10)
        result["status"], result["body"] = r.status_code, r.json()

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.4)
    with connect(server.port) as idle:  # an idle keep-alive connection is closed by the drain
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        raw, closed = read_all(idle, timeout=3)
        assert closed and raw == b"" and time.monotonic() - t0 < 1.0
    t.join(10)
    assert result == {"status": 200, "body": 1.5}
    assert server.proc.wait(10) == 0
    out = server.output()
    assert "draining" in out and "Traceback" not in out


def test_graceful_timeout_cuts_long_requests(tmp_path):
    server = start("asgiserve", "tests.apps.traffic:Unlimited", tmp_path, "--graceful-timeout", "0.5")
    errors: list[Exception] = []

    def call() -> None:
        try:
            httpx.post(server.url + "/sleep", json={"seconds": 4}, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(10) == 0
    assert time.monotonic() - t0 < 3
    t.join(10)
    assert len(errors) == 1


def test_workers_serve_restart_and_stop(tmp_path):
    # The service asks for workers=2 in its config, which is the default for --workers.
    server = start("asgiserve", "tests.apps.workers:TwoWorkers", tmp_path)
    assert wait_for(lambda: len(children(server.proc.pid)) == 2)
    first = children(server.proc.pid)
    pids = {httpx.post(server.url + "/pid", timeout=5).json() for _ in range(20)}
    assert pids <= first and pids
    victim = next(iter(first))
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: len(children(server.proc.pid)) == 2 and victim not in children(server.proc.pid))
    assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
    assert server.stop() == 0
    assert "restarting" in server.output()


def test_a_worker_that_keeps_dying_is_restarted_after_a_growing_delay(tmp_path):
    server = start("asgiserve", "tests.apps.workers:TwoWorkers", tmp_path)
    assert wait_for(lambda: len(children(server.proc.pid)) == 2)
    for _ in range(4):
        # Kill a worker as soon as it is up: each death comes soon after a start.
        before = children(server.proc.pid)
        victim = max(before)  # the newest
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(children(server.proc.pid)) == 2 and victim not in children(server.proc.pid))
    # The other worker served throughout.
    assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
    assert server.stop() == 0
    delays = [float(m) for m in re.findall(r"restarting in ([\d.]+) s", server.output())]
    assert delays == [0.1, 0.2, 0.4, 0.8]


def test_workers_flag_overrides(tmp_path):
    server = start("asgiserve", "tests.apps.workers:TwoWorkers", tmp_path, "--workers", "1")
    assert children(server.proc.pid) == set()
    assert httpx.post(server.url + "/pid", timeout=5).json() == server.proc.pid
    assert server.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_startup_failure_exits_non_zero(tmp_path, workers):
    server = start("asgiserve", "tests.apps.traffic:Broken", tmp_path, "--workers", workers, ready=False)
    assert server.proc.wait(15) == 3
    out = server.output()
    assert "model weights missing" in out and "startup failed" in out
    assert "Traceback" not in out  # one line; the traceback is for --log-level debug (tests/test_cli_errors.py)


def test_failed_startup_message_from_plain_app(tmp_path):
    server = start("asgiserve", "tests.apps.raw_asgi:failing_startup", tmp_path, ready=False)
    assert server.proc.wait(15) == 3
    assert "database unreachable" in server.output()


def test_app_without_lifespan_is_served(tmp_path):
    server = start("asgiserve", "tests.apps.raw_asgi:no_lifespan", tmp_path, ready=False)
    try:
        wait_listening(server.port, server.proc, path="/")
        assert get(server.port, "/").body == b"plain"
        assert "lifespan" in server.output()
    finally:
        assert server.stop() == 0


def test_max_connections(tmp_path):
    server = start("asgiserve", "tests.apps.raw_asgi:app", tmp_path, "--max-connections", "2", ready=False)
    try:
        wait_listening(server.port, server.proc)
        with connect(server.port) as a, connect(server.port) as b:
            a.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
            assert a.recv(65536).startswith(b"HTTP/1.1 200")
            with connect(server.port) as c:
                raw, closed = read_all(c, timeout=3)
                assert closed and raw.startswith(b"HTTP/1.1 503")
            b.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b.recv(65536).startswith(b"HTTP/1.1 200")
        assert wait_for(lambda: get(server.port, "/echo").status == 200)
    finally:
        assert server.stop() == 0


def test_ctrl_c_with_workers_drains(tmp_path):
    # Ctrl-C reaches the parent and every worker at once; in-flight requests still finish.
    server = start("asgiserve", "tests.apps.traffic:Unlimited", tmp_path, "--workers", "2")
    assert wait_for(lambda: len(children(server.proc.pid)) == 2)
    result: dict[str, int] = {}

    def call() -> None:
        result["status"] = httpx.post(server.url + "/sleep", json={"seconds": 1.0}, timeout=10).status_code

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    for pid in (server.proc.pid, *children(server.proc.pid)):
        os.kill(pid, signal.SIGINT)
    t.join(10)
    assert result == {"status": 200}
    assert server.proc.wait(10) == 0


def test_stuck_sync_api_does_not_hold_the_exit(tmp_path):
    # A sync api still blocking its thread after the graceful timeout must not keep the process alive.
    server = start("asgiserve", "tests.apps.traffic:Traffic", tmp_path, "--graceful-timeout", "0.3")
    t = threading.Thread(target=lambda: httpx.post(server.url + "/block", json={"seconds": 8}, timeout=10))
    t.daemon = True
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0
    assert time.monotonic() - t0 < 5
