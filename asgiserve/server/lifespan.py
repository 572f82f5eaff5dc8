"""The ASGI lifespan protocol from the server side: startup before serving, shutdown after the drain.

An app that raises before answering the startup message does not speak lifespan and is served anyway
(ASGI spec); one that answers ``lifespan.startup.failed`` stops the server with its message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["Lifespan"]

logger = logging.getLogger("asgiserve")


class Lifespan:
    """Drives one app's lifespan scope; ``state`` is shared with every request scope (shallow copies)."""

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.unsupported = False
        self.failed: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> bool:
        """Run startup; False when the app reported failure."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self.task = asyncio.get_running_loop().create_task(self._run(scope))
        await self.queue.put({"type": "lifespan.startup"})
        await self.started.wait()
        if self.failed is not None:
            logger.error("Application startup failed: %s", self.failed)
            return False
        return True

    async def shutdown(self, timeout: float) -> None:
        """Run shutdown (bounded by ``timeout``)."""
        if self.unsupported or self.task is None or self.task.done():
            return
        await self.queue.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self.stopped.wait(), timeout)
        except asyncio.TimeoutError:
            logger.error("Application shutdown did not finish within %g s", timeout)
            self.task.cancel()

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self.queue.get, self._send)
        except BaseException as exc:
            if not self.started.is_set():
                self.unsupported = True
                logger.info("ASGI 'lifespan' protocol appears unsupported (%s: %s)", type(exc).__name__, exc)
            elif not self.stopped.is_set():
                logger.error("Exception in lifespan", exc_info=exc)
        finally:
            self.started.set()
            self.stopped.set()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.started.set()
        elif kind == "lifespan.startup.failed":
            self.failed = message.get("message") or "startup failed"
            self.started.set()
        elif kind == "lifespan.shutdown.complete":
            self.stopped.set()
        elif kind == "lifespan.shutdown.failed":
            logger.error("Application shutdown failed: %s", message.get("message", ""))
            self.stopped.set()
