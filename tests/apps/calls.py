"""Apis that probe how a call runs: its context, its task, timeouts and anyio inside it."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import anyio.to_thread

import asgiserve

seen_by_call: contextvars.ContextVar[str] = contextvars.ContextVar("seen_by_call", default="unset")


@asgiserve.service(traffic={"timeout": 0.5})
class Calls:
    @asgiserve.api
    async def context(self, tag: str, pause: bool = False) -> dict[str, Any]:
        before = seen_by_call.get()
        seen_by_call.set(tag)
        if pause:
            await asyncio.sleep(0.01)  # the rest runs after a suspension: the value must still be there
        return {"before": before, "after": seen_by_call.get(), "in_task": asyncio.current_task() is not None}

    @asgiserve.api
    async def context_stream(self, tag: str) -> AsyncGenerator[str, None]:
        """A stream is served over ASGI even on our server: a request with a task of its own."""
        before = seen_by_call.get()
        seen_by_call.set(tag)
        yield f"{before}->{tag}"

    @asgiserve.api
    async def inner_timeout(self, seconds: float) -> str:
        try:
            async with asyncio.timeout(seconds):
                await asyncio.sleep(5)
        except TimeoutError:
            return "inner timeout"
        return "slept"

    @asgiserve.api
    async def with_anyio(self, x: int) -> int:
        with anyio.fail_after(2):
            return await anyio.to_thread.run_sync(lambda: x * 2)

    @asgiserve.api
    async def sleep(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @asgiserve.api
    async def refuse(self, now: bool) -> str:
        if not now:
            await asyncio.sleep(0.01)
        raise asgiserve.NotFound("nothing here")

    @asgiserve.api
    async def crash(self, now: bool) -> str:
        if not now:
            await asyncio.sleep(0.01)
        raise RuntimeError("model fell over")


app = asgiserve.to_asgi(Calls)
