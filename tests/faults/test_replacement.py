"""A replacement worker that fails to start does not take the healthy ones down: it is retried with the
restart backoff while they serve, and joins them once it starts."""

from __future__ import annotations

import os
import signal
import time

import httpx

from tests.conftest import start
from tests.test_lifecycle import children, wait_for


def test_a_failing_replacement_is_retried_while_the_others_serve(tmp_path):
    marker = tmp_path / "fail"
    server = start("asgiserve", "tests.apps.workers:FlakyStart", tmp_path, env={"FLAKY_MARKER": str(marker)})
    assert wait_for(lambda: len(children(server.proc.pid)) == 2)
    marker.touch()
    victim = max(children(server.proc.pid))
    os.kill(victim, signal.SIGKILL)
    # For 1.5 s every replacement fails to start; the healthy worker answers every probe meanwhile.
    served = 0
    deadline = time.monotonic() + 1.5
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            assert client.get(server.url + "/readyz").status_code == 200
            served += 1
            time.sleep(0.02)
    assert server.proc.poll() is None and served > 20
    assert "failed to start: the others keep serving" in server.output()
    marker.unlink()
    assert wait_for(lambda: len(children(server.proc.pid)) == 2, timeout=15)
    # Started for good: no more failures or restarts once the model loads again.
    failures, workers = server.output().count("failed to start"), children(server.proc.pid)
    time.sleep(2)
    assert server.output().count("failed to start") == failures and children(server.proc.pid) == workers
    assert server.stop() == 0
