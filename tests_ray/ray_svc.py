"""A service for the Ray Serve test: which replica answered, a slow stream, and a shutdown hook that leaves
a file behind (Serve stops replicas in their own processes)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from pathlib import Path

import asgiserve


@asgiserve.service(traffic={"max_concurrency": 16}, resources={"cpu": 0.25})
class OnRay:
    def __init__(self) -> None:
        self.started_in = os.getpid()

    @asgiserve.api
    async def pid(self) -> int:
        return self.started_in

    @asgiserve.api
    async def tokens(self, n: int = 4) -> AsyncGenerator[str, None]:
        for i in range(n):
            yield f"t{i} "
            await asyncio.sleep(0.3)

    def __is_ready__(self) -> bool:
        return not Path(os.environ["RAY_TEST_MARKS"], "not-ready").exists()

    @asgiserve.on_shutdown
    def leave_a_mark(self) -> None:
        Path(os.environ["RAY_TEST_MARKS"], f"shutdown-{self.started_in}").touch()
