"""Workers do not outlive their supervisor: after a SIGKILL of the parent they drain and exit."""

from __future__ import annotations

import os
import signal

import httpx

from tests.conftest import start
from tests.test_lifecycle import children, wait_for


def alive(pid: int) -> bool:
    """Running (a zombie waiting for whoever adopted it to reap it has exited)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    server = start("asgiserve", "tests.apps.workers:TwoWorkers", tmp_path)
    assert wait_for(lambda: len(children(server.proc.pid)) == 2)
    workers = children(server.proc.pid)
    assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(5)
    # An idle worker drains at its next once-a-second tick: gone within a few seconds, none left serving.
    assert wait_for(lambda: not any(alive(pid) for pid in workers), timeout=5)
    assert "Supervisor" in server.output() and "is gone: draining" in server.output()
