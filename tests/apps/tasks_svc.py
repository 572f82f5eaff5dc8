"""Services with ``@task`` apis, for the task tests (run under asgiserve and uvicorn)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import tempfile
import time

import asgiserve


@asgiserve.service(threads=4)
class TaskSvc:
    """Sync and async tasks, file input and output, a failing one, and a plain api."""

    @asgiserve.task
    def add(self, a: int, b: int = 0, delay: float = 0.0) -> int:
        time.sleep(delay)
        return a + b

    @asgiserve.task(route="/v1/echo")
    async def echo(self, text: str, delay: float = 0.0) -> dict[str, object]:
        await asyncio.sleep(delay)
        return {"text": text, "pid": os.getpid()}

    @asgiserve.task
    def count(self, f: pathlib.Path, label: str = "") -> dict[str, object]:
        return {"size": len(f.read_bytes()), "label": label}

    @asgiserve.task
    def render(self, n: int) -> pathlib.Path:
        out = pathlib.Path(tempfile.mkdtemp()) / f"out-{n}.txt"
        out.write_text("x" * n)
        return out

    @asgiserve.task
    def boom(self, why: str = "no") -> str:
        raise ValueError(why)

    @asgiserve.task
    def refuse(self, n: int) -> str:
        raise asgiserve.InvalidArgument(f"n={n} is not acceptable")

    @asgiserve.task
    async def wait_long(self, seconds: float = 30.0) -> str:
        await asyncio.sleep(seconds)
        return "woke"

    @asgiserve.task
    def sleep_sync(self, seconds: float = 30.0) -> str:
        time.sleep(seconds)
        return "slept"

    @asgiserve.api
    def ping(self) -> str:
        return "pong"


@asgiserve.service(traffic={"max_concurrency": 1})
class OneAtATime:
    """At most one task runs per worker: the rest wait pending, in submission order."""

    @asgiserve.task
    async def step(self, i: int, delay: float = 0.2) -> dict[str, float]:
        started = time.time()
        await asyncio.sleep(delay)
        return {"i": i, "started": started}


app = asgiserve.to_asgi(TaskSvc)
