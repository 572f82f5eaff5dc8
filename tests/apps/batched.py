"""A service with batchable apis: records each batch it was called with."""

from __future__ import annotations

import asyncio
import time

import numpy as np

import asgiserve


@asgiserve.service(threads=1)
class Batched:
    def __init__(self) -> None:
        self.batches: list[int] = []

    @asgiserve.api(batchable=True, max_batch_size=16, max_latency_ms=5000)
    def square(self, xs: list[float]) -> list[float]:
        self.batches.append(len(xs))
        time.sleep(0.05)  # a model call: batching pays off while it runs
        return [x * x for x in xs]

    @asgiserve.api(batchable=True, batch_dim=0)
    async def double(self, a: np.ndarray) -> np.ndarray:
        self.batches.append(int(a.shape[0]))
        await asyncio.sleep(0.02)
        return a * 2

    @asgiserve.api(batchable=True, max_batch_size=8, max_latency_ms=10)
    async def tight(self, xs: list[int]) -> list[int]:
        # Slower than max_latency_ms: waiting for a running batch must not count against a call.
        self.batches.append(len(xs))
        await asyncio.sleep(0.05)
        return [x + 1 for x in xs]

    @asgiserve.api
    def seen(self) -> list[int]:
        return self.batches


app = asgiserve.to_asgi(Batched)
