"""Adaptive batching for ``@api(batchable=True)``: concurrent calls are merged into one call of the api.

Policy: a call that arrives while the api is idle runs at once (no added latency under light load);
calls that arrive while a batch is running wait, and run together as the next batch as soon as it ends,
up to ``max_batch_size`` items (a call larger than that runs as a batch of its own, never beside another).
Waiting for the running batch is not held against a call; ``max_latency_ms`` bounds the time a call
spends left behind because the batches were full, after which it fails with 503, so that an overloaded
api sheds load instead of queueing without bound. Inputs are lists (concatenated) or
numpy arrays (concatenated along the input ``batch_dim``); outputs are split back by each call's size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any

from .errors import ServiceUnavailable
from .metrics import Metrics

__all__ = ["Batcher"]


def _size(value: Any, dim: int) -> int:
    shape = getattr(value, "shape", None)
    return int(shape[dim]) if shape is not None else len(value)


class Batcher:
    """Merges concurrent calls of one batchable api."""

    def __init__(
        self,
        run: Callable[[Any], Awaitable[Any]],
        *,
        endpoint: str,
        metrics: Metrics,
        max_batch_size: int,
        max_latency_ms: float,
        batch_dim: int | tuple[int, int] = 0,
    ) -> None:
        self._run = run
        self.endpoint = endpoint
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000
        self.in_dim, self.out_dim = batch_dim if isinstance(batch_dim, tuple) else (batch_dim, batch_dim)
        # [items, size, future, time it was first left out of a full batch (0.0: never)]
        self._queue: deque[list[Any]] = deque()
        self._busy = False

    def __repr__(self) -> str:
        return f"<Batcher {self.endpoint} queued={len(self._queue)} busy={self._busy}>"

    async def submit(self, items: Any) -> Any:
        """Run ``items`` (a list or array) as part of a batch and return this call's share of the output."""
        n = _size(items, self.in_dim)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append([items, n, fut, 0.0])
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                if batch:
                    await self._execute(batch)
        finally:
            self._busy = False

    def _take(self) -> list[tuple[Any, int, asyncio.Future[Any]]]:
        batch: list[tuple[Any, int, asyncio.Future[Any]]] = []
        total = 0
        now = monotonic()
        full = False
        kept: deque[list[Any]] = deque()
        for entry in self._queue:
            items, n, fut, left_out_at = entry
            if fut.done():  # the caller went away (cancelled by its deadline or its client)
                continue
            if left_out_at and now - left_out_at > self.max_latency:
                fut.set_exception(
                    ServiceUnavailable(f"Waited over max_latency_ms ({self.max_latency * 1000:g})")
                )
                continue
            if full or (batch and total + n > self.max_batch_size):
                full = True  # keep arrival order: nothing later jumps ahead of a call left out
                if not left_out_at:
                    entry[3] = now
                kept.append(entry)
                continue
            batch.append((items, n, fut))
            total += n
        self._queue = kept
        return batch

    async def _execute(self, batch: list[tuple[Any, int, asyncio.Future[Any]]]) -> None:
        parts = [items for items, _, _ in batch]
        sizes = [n for _, n, _ in batch]
        self.metrics.observe_batch(self.endpoint, sum(sizes))
        try:
            merged = parts[0] if len(parts) == 1 else self._concat(parts)
            output = await self._run(merged)
            shares = [output] if len(parts) == 1 else self._split(output, sizes)
        except BaseException as exc:
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, fut), share in zip(batch, shares):
            if not fut.done():
                fut.set_result(share)

    def _concat(self, parts: list[Any]) -> Any:
        if hasattr(parts[0], "shape"):
            import numpy

            return numpy.concatenate(parts, axis=self.in_dim)
        merged: list[Any] = []
        for p in parts:
            merged.extend(p)
        return merged

    def _split(self, output: Any, sizes: list[int]) -> list[Any]:
        if _size(output, self.out_dim) != sum(sizes):
            raise ValueError(
                f"batchable api returned {_size(output, self.out_dim)} items for a batch of {sum(sizes)}"
            )
        shares = []
        start = 0
        if hasattr(output, "shape"):
            import numpy

            bounds = numpy.cumsum(sizes)[:-1]
            return list(numpy.split(output, bounds, axis=self.out_dim))
        for n in sizes:
            shares.append(output[start : start + n])
            start += n
        return shares
