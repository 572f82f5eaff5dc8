"""The clients' ``Task`` API: ``client.<task>.submit(...)`` and the endpoint's calls by id, on both clients,
against asgiserve and against a real BentoML server (in its own virtualenv); and BentoML's client against
asgiserve's task endpoints."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import asgiserve
from asgiserve.client import AsyncTask, Task
from tests.conftest import ROOT, free_port
from tests.test_client_bentoml import bentoml_python

MODULE = "tests.apps.tasks_svc"


def wait_sync(task: Task, want: asgiserve.TaskStatus, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while task.get_status() is not want:
        assert time.monotonic() < deadline, f"{task} still {task.get_status()}"
        time.sleep(0.02)


async def wait_async(task: AsyncTask, want: asgiserve.TaskStatus, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while await task.get_status() is not want:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


@pytest.fixture
def server(run_server, tmp_path):
    return run_server("asgiserve", f"{MODULE}:TaskSvc", env={"ASGISERVE_TASK_DIR": str(tmp_path / "store")})


def test_sync_client_tasks(server, tmp_path):
    Status = asgiserve.TaskStatus
    assert asgiserve.ResultStatus is Status and Status.COMPLETED.value == "completed"
    with asgiserve.SyncHTTPClient(server.url) as client:
        task = client.add.submit(a=1, b=2)
        assert isinstance(task, Task) and len(task.id) == 32
        wait_sync(task, Status.COMPLETED)
        assert task.get_status().value == "completed"
        assert task.get() == 3
        assert client.add(a=1, b=2) == 3  # still callable at once
        again = task.retry()
        assert again.id != task.id
        wait_sync(again, Status.COMPLETED)
        assert client.add.get(again.id) == 3 and client.add.get_status(again.id) is Status.COMPLETED

        with pytest.raises(TypeError):
            client.add.submit(b=1)  # checked before anything is sent
        with pytest.raises(asgiserve.InvalidArgument, match=r"\$\.a"):
            client.add.submit(a="x")
        with pytest.raises(asgiserve.NotFound):
            client.add.get_status("0" * 32)

        slow = client.wait_long.submit(seconds=30)
        wait_sync(slow, Status.IN_PROGRESS)
        with pytest.raises(asgiserve.InvalidArgument, match="not completed yet"):
            slow.get()
        slow.cancel()
        assert slow.get_status() is Status.CANCELED
        other = client.wait_long.submit(seconds=30)
        client.wait_long.cancel(other.id)
        assert client.wait_long.get_status(other.id) is Status.CANCELED
        retried = client.wait_long.retry(other.id)
        wait_sync(retried, Status.IN_PROGRESS)
        retried.cancel()

        src = tmp_path / "in.bin"
        src.write_bytes(b"12345")
        counted = client.count.submit(f=src, label="x")
        wait_sync(counted, Status.COMPLETED)
        assert counted.get() == {"size": 5, "label": "x"}
        rendered = client.render.submit(n=4)
        wait_sync(rendered, Status.COMPLETED)
        out = rendered.get()
        assert isinstance(out, Path) and out.read_text() == "xxxx" and out.name == "out-4.txt"

        failed = client.boom.submit(why="x")
        wait_sync(failed, Status.FAILED)
        with pytest.raises(asgiserve.InternalServerError):
            failed.get()


def test_async_client_tasks(server):
    Status = asgiserve.TaskStatus

    async def main() -> None:
        async with asgiserve.AsyncHTTPClient(server.url) as client:
            tasks = await asyncio.gather(*(client.echo.submit(text=f"m{i}") for i in range(20)))
            assert all(isinstance(t, AsyncTask) for t in tasks)
            for t in tasks:
                await wait_async(t, Status.COMPLETED)
            results = await asyncio.gather(*(t.get() for t in tasks))
            assert [r["text"] for r in results] == [f"m{i}" for i in range(20)]
            assert (await client.echo(text="now"))["text"] == "now"
            again = await tasks[0].retry()
            await wait_async(again, Status.COMPLETED)
            assert (await client.echo.get(again.id))["text"] == "m0"
            assert await client.echo.get_status(again.id) is Status.COMPLETED
            slow = await client.wait_long.submit(seconds=30)
            await wait_async(slow, Status.IN_PROGRESS)
            await slow.cancel()
            assert await slow.get_status() is Status.CANCELED
            other = await client.wait_long.submit(seconds=30)
            await client.wait_long.cancel(other.id)
            assert (await client.wait_long.get_status(other.id)).value == "canceled"
            with pytest.raises(asgiserve.InvalidArgument, match="was canceled"):
                await client.wait_long.get(other.id)

    asyncio.run(main())


@pytest.fixture
def bento_tasks_server(tmp_path):
    py = bentoml_python()
    port = free_port()
    log = tmp_path / "bentoml.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENTOML_HOME": str(tmp_path / "bentoml-home")}
    cmd = [str(py), "-m", "bentoml", "serve", "tests.apps.tasks_bentoml_svc:BentoTasks"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.mark.timeout(1200)
def test_clients_against_bentoml_tasks(bento_tasks_server):
    Status = asgiserve.TaskStatus
    with asgiserve.SyncHTTPClient(bento_tasks_server, server_ready_timeout=90) as client:
        task = client.add.submit(a=2, b=3)
        wait_sync(task, Status.COMPLETED)
        assert task.get() == 5
        again = task.retry()
        wait_sync(again, Status.COMPLETED)
        assert client.add.get(again.id) == 5
        with pytest.raises(asgiserve.NotFound):
            client.add.get_status("0" * 32)
        slow = client.add.submit(a=1, delay=5)
        # BentoML's own server does not cancel tasks: it says so with a 400, which the client raises.
        with pytest.raises(asgiserve.InvalidArgument, match="not supported"):
            slow.cancel()

    async def main() -> int:
        async with asgiserve.AsyncHTTPClient(bento_tasks_server) as client:
            t = await client.add.submit(a=40, b=2)
            await wait_async(t, Status.COMPLETED)
            return int(await t.get())  # type: ignore[call-overload]

    assert asyncio.run(main()) == 42


@pytest.mark.timeout(1200)
def test_bentoml_client_against_asgiserve_tasks(server):
    py = bentoml_python()
    script = ROOT / "tests" / "apps" / "tasks_bentoml_calls.py"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(py), str(script), server.url], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"status": "completed", "get": 42, "retry": [True, 42], "canceled": "canceled"}
