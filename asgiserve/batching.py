"""Adaptive batching for ``@api(batchable=True)``: concurrent calls are merged into one call of the api.

Policy: a call that arrives while the api is idle runs at once (no added latency under light load);
calls that arrive while a batch is running wait, and run together as the next batch as soon as it ends,
up to ``max_batch_size`` items (a call larger than that runs as a batch of its own, never beside another).
Waiting for the running batch is not held against a call; ``max_latency_ms`` bounds the time a call
spends left behind because the batches were full, after which it fails with 503, so that an overloaded
api sheds load instead of queueing without bound. Taking a batch costs time in the size of that batch
and of the calls that came since the last one, not in the length of the queue, so that a long queue
(thousands of callers behind a slow model) does not make every batch slower to form. Inputs are lists (concatenated) or
numpy arrays (concatenated along the input ``batch_dim``); outputs are split back by each call's size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from time import monotonic
from typing import TYPE_CHECKING, Protocol, cast

from .errors import ServiceUnavailable
from .metrics import Metrics

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

__all__ = ["Batch", "Batcher"]


class Batch(Protocol):
    """What a batchable api takes and returns: a list, or an array (it has ``shape``) of items along a dimension."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[object]: ...
    def __getitem__(self, index: slice, /) -> object: ...


# A queued call: items, their count, the caller's future, when it was first left out of a full batch (0.0: never),
# and the caller's tag (its ``Context``, for an api that takes one).
_Entry = tuple[Batch, int, "asyncio.Future[object]", float, object]
_Taken = tuple[Batch, int, "asyncio.Future[object]", object]


def _size(value: Batch, dim: int) -> int:
    shape = getattr(value, "shape", None)
    return int(shape[dim]) if shape is not None else len(value)


class Batcher:
    """Merges concurrent calls of one batchable api."""

    def __init__(
        self,
        run: Callable[..., Awaitable[object]],
        *,
        endpoint: str,
        metrics: Metrics,
        max_batch_size: int,
        max_latency_ms: float,
        batch_dim: int | tuple[int, int] = 0,
        tagged: bool = False,
    ) -> None:
        self._run = run
        self.tagged = tagged  # ``run`` also takes the list of the batch's tags
        self.endpoint = endpoint
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000
        self.in_dim, self.out_dim = batch_dim if isinstance(batch_dim, tuple) else (batch_dim, batch_dim)
        # Calls already left out of a full batch (stamped, in arrival order, so their stamps never
        # decrease), then calls never yet considered: every call is before every newer one.
        self._left: deque[_Entry] = deque()
        self._fresh: deque[_Entry] = deque()
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps only weak references

    def __repr__(self) -> str:
        queued = len(self._left) + len(self._fresh)
        return f"<Batcher {self.endpoint} queued={queued} busy={self._drainer is not None}>"

    async def submit(self, items: object, tag: object = None) -> object:
        """Run ``items`` (a list or array) as part of a batch and return this call's share of the output."""
        # The api's one parameter: a list or an array, as ``@api(batchable=True)`` requires.
        batch = cast(Batch, items)
        n = _size(batch, self.in_dim)
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._fresh.append((batch, n, fut, 0.0, tag))
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._left or self._fresh:
                batch = self._take()
                if batch:
                    await self._execute(batch)
        finally:
            self._drainer = None

    def _take(self) -> list[_Taken]:
        batch: list[_Taken] = []
        total = 0
        now = monotonic()
        full = False
        for queue in (self._left, self._fresh):
            while queue and not full:
                items, n, fut, left_out_at, tag = queue[0]
                if fut.done():  # the caller went away (cancelled by its deadline or its client)
                    queue.popleft()
                    continue
                if left_out_at and now - left_out_at > self.max_latency:
                    # The oldest stamps come first: once one is within the limit, all behind it are.
                    queue.popleft()
                    fut.set_exception(
                        ServiceUnavailable(f"Waited over max_latency_ms ({self.max_latency * 1000:g})")
                    )
                    continue
                if batch and total + n > self.max_batch_size:
                    full = True  # keep arrival order: nothing later jumps ahead of a call left out
                    continue
                queue.popleft()
                batch.append((items, n, fut, tag))
                total += n
        # The calls not yet considered that this batch leaves out start their max_latency now.
        left = self._left
        for items, n, fut, _, tag in self._fresh:
            if not fut.done():
                left.append((items, n, fut, now, tag))
        self._fresh.clear()
        return batch

    async def _execute(self, batch: list[_Taken]) -> None:
        parts = [items for items, _, _, _ in batch]
        sizes = [n for _, n, _, _ in batch]
        self.metrics.observe_batch(self.endpoint, sum(sizes))
        try:
            merged = parts[0] if len(parts) == 1 else self._concat(parts)
            if self.tagged:
                output = await self._run(merged, [tag for _, _, _, tag in batch])
            else:
                output = await self._run(merged)
            shares = [output] if len(parts) == 1 else self._split(cast(Batch, output), sizes)
        except BaseException as exc:
            for _, _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, fut, _), share in zip(batch, shares):
            if not fut.done():
                fut.set_result(share)

    def _concat(self, parts: list[Batch]) -> Batch:
        if hasattr(parts[0], "shape"):
            import numpy

            return numpy.concatenate(cast("Sequence[ArrayLike]", parts), axis=self.in_dim)
        merged: list[object] = []
        for p in parts:
            merged.extend(p)
        return merged

    def _split(self, output: Batch, sizes: list[int]) -> list[object]:
        if _size(output, self.out_dim) != sum(sizes):
            raise ValueError(
                f"batchable api returned {_size(output, self.out_dim)} items for a batch of {sum(sizes)}"
            )
        shares: list[object] = []
        start = 0
        if hasattr(output, "shape"):
            import numpy

            bounds = numpy.cumsum(sizes)[:-1]
            return list(numpy.split(cast("ArrayLike", output), bounds, axis=self.out_dim))
        for n in sizes:
            shares.append(output[start : start + n])
            start += n
        return shares
