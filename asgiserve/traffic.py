"""Traffic rules that outlive a single call: request deadlines and concurrency slots held by threads.

Deadlines are swept by one periodic timer per app instead of a timer per request: registering a request
is a dict insert, and the sweep cancels the tasks past their deadline (precision: a tenth of the
timeout, at most 50 ms). A request's handler learns it was cancelled by its deadline, not by its server,
from ``Deadlines.expired``.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

__all__ = ["Deadlines"]


class Deadlines:
    """Deadlines (``time.monotonic()`` values) of in-flight requests, keyed by the task serving each."""

    __slots__ = ("_handle", "_loop", "expired", "interval", "pending", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.interval = min(0.05, timeout / 10)
        self.pending: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin sweeping on ``loop``."""
        self._loop = loop
        self._handle = loop.call_later(self.interval, self._sweep)

    def stop(self) -> None:
        """Stop sweeping."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _sweep(self) -> None:
        loop = self._loop
        assert loop is not None
        now = monotonic()
        if self.pending:
            # Deadlines are start time + one timeout, so insertion order is deadline order.
            late = []
            for task, deadline in self.pending.items():
                if deadline > now:
                    break
                late.append(task)
            for task in late:
                del self.pending[task]
                if not task.done():
                    self.expired.add(task)
                    task.cancel()
        self._handle = loop.call_later(self.interval, self._sweep)

    def finish(self, task: asyncio.Task[Any] | None) -> None:
        """The request served by ``task`` ended: forget its deadline and any expiry it swallowed."""
        self.pending.pop(task, None)  # type: ignore[arg-type]
        if self.expired and task in self.expired:
            self.claim_expiry(task)

    def claim_expiry(self, task: asyncio.Task[Any] | None) -> bool:
        """True (once) if ``task`` was cancelled by its deadline; undoes the cancellation request."""
        if task is None or task not in self.expired:
            return False
        self.expired.discard(task)
        # Python 3.11+ counts cancellation requests; one turned into a 504 must not propagate further.
        if hasattr(task, "uncancel"):
            task.uncancel()
        return True
