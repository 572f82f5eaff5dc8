"""Services exercising traffic rules and streaming."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator

import asgiserve


@asgiserve.service(traffic={"timeout": 0.5, "max_concurrency": 4}, threads=2)
class Traffic:
    @asgiserve.api
    async def sleep(self, seconds: float = 0.0) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @asgiserve.api
    def block(self, seconds: float = 0.0) -> str:
        time.sleep(seconds)
        return "done"

    @asgiserve.api
    async def tokens(self, n: int = 3, delay: float = 0.3) -> AsyncGenerator[str, None]:
        for i in range(n):
            yield f"tok{i} "
            await asyncio.sleep(delay)

    @asgiserve.api
    def numbers(self, n: int = 3) -> Generator[dict[str, int], None, None]:
        for i in range(n):
            yield {"i": i}

    @asgiserve.api
    async def fail_first(self) -> AsyncGenerator[str, None]:
        raise ValueError("boom before anything")
        yield "never"  # pragma: no cover

    @asgiserve.api(media_type="text/event-stream")
    async def events(self, n: int = 2) -> AsyncGenerator[dict[str, int], None]:
        for i in range(n):
            yield {"i": i}


@asgiserve.service(traffic={"timeout": 5})
class Unlimited:
    @asgiserve.api
    async def sleep(self, seconds: float = 0.0) -> float:
        await asyncio.sleep(seconds)
        return seconds


class Broken:
    def __init__(self) -> None:
        raise RuntimeError("model weights missing")

    @asgiserve.api
    def never(self) -> str:
        return "x"


Broken = asgiserve.service(Broken)

app = asgiserve.to_asgi(Traffic)
broken_app = asgiserve.to_asgi(Broken)
