"""With ``--workers 2``, killing the worker that runs a call does not make the client resend it to the other
worker: the call ran once, and the caller is told it failed (before, both clients resent the POST and it ran
twice). A caller that opted in with ``retries=`` has it sent again."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from asgiserve import AsyncHTTPClient, SyncHTTPClient, TransportError
from tests.conftest import start
from tests.test_lifecycle import children, wait_for


def kill_the_runner(runs, server_pid: int) -> None:
    """Once the call is running, SIGKILL the worker running it."""
    assert wait_for(lambda: runs.exists() and runs.read_text().strip() != "", timeout=10)
    victim = int(runs.read_text().split()[0])
    assert victim in children(server_pid)
    os.kill(victim, signal.SIGKILL)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.parametrize("retries", [0, 1])
def test_a_call_on_a_killed_worker_runs_once(tmp_path, client_kind, retries):
    runs = tmp_path / "runs"
    server = start("asgiserve", "tests.faults.apps:Slow", tmp_path, env={"RUNS_FILE": str(runs)})
    try:
        assert wait_for(lambda: len(children(server.proc.pid)) == 2)
        killer = threading.Thread(target=kill_the_runner, args=(runs, server.proc.pid))
        outcome: list[object] = []
        killer.start()
        # The call goes out on the connection that read the schema: a reused one, as in a busy client.
        if client_kind == "sync":
            with SyncHTTPClient(server.url, timeout=10, retries=retries) as client:
                try:
                    outcome.append(client.count(seconds=1.5))
                except TransportError as exc:
                    outcome.append(exc)
        else:

            async def go() -> None:
                async with AsyncHTTPClient(server.url, timeout=10, retries=retries) as aclient:
                    try:
                        outcome.append(await aclient.count(seconds=1.5))
                    except TransportError as exc:
                        outcome.append(exc)

            asyncio.run(go())
        killer.join(10)
        time.sleep(0.2)
        ran = runs.read_text().split()
        if retries:  # the caller said it may run twice: resent to the other worker, which answers
            assert len(ran) == 2 and outcome == [int(ran[1])]
        else:
            assert len(ran) == 1, ran  # ran once...
            assert isinstance(outcome[0], TransportError)  # ...and the caller knows it failed
    finally:
        server.stop()
