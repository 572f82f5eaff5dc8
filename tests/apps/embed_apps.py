"""Services and apps for the embedding tests: served in the test process (threads), in forked workers, and
through the in-process test clients."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import threading
from collections.abc import AsyncGenerator
from typing import Any

import asgiserve
from asgiserve import server_context

# Set by ``slow`` once it runs: the test knows a request is in flight without guessing a delay.
IN_FLIGHT = threading.Event()
EVENTS: list[str] = []  # lifespan steps of LifespanSvc, in order


@asgiserve.service(traffic={"timeout": 30})
class EmbedSvc:
    """Reports which worker answers; one slow api, one stream."""

    def __init__(self) -> None:
        # Each worker notes its identity where the test can read it (``EMBED_OUT``, when set).
        out = os.environ.get("EMBED_OUT")
        if out:
            path = pathlib.Path(out) / f"worker-{os.getpid()}.json"
            path.write_text(json.dumps(self.whoami_now()))

    @staticmethod
    def whoami_now() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "index": asgiserve.worker_index(),
            "context_index": server_context.worker_index,
            "env": os.environ.get("ASGISERVE_WORKER_INDEX"),
            "service": server_context.service_name,
        }

    @asgiserve.api
    async def whoami(self) -> dict[str, Any]:
        return self.whoami_now()

    @asgiserve.api
    async def add(self, a: int, b: int = 0) -> int:
        return a + b

    @asgiserve.api
    async def slow(self, seconds: float = 0.5) -> str:
        IN_FLIGHT.set()
        await asyncio.sleep(seconds)
        return "done"

    @asgiserve.api
    async def count(self, n: int = 3) -> AsyncGenerator[int, None]:
        for i in range(n):
            yield i


@asgiserve.service
class Broken:
    def __init__(self) -> None:
        raise RuntimeError("no model weights here")

    @asgiserve.api
    def predict(self, x: int) -> int:
        return x


async def lifespan_recorder(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A mounted ASGI app that records its lifespan and answers GET /events with what happened so far."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            step = message["type"].split(".")[1]
            EVENTS.append(f"mount {step}")
            await send({"type": f"lifespan.{step}.complete"})
            if step == "shutdown":
                return
    body = json.dumps(EVENTS).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


@asgiserve.service
@asgiserve.mount_asgi_app(lifespan_recorder, path="/life")
class LifespanSvc:
    def __init__(self) -> None:
        EVENTS.append("init")

    @asgiserve.api
    def events(self) -> list[str]:
        return list(EVENTS)


async def plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app (no lifespan): answers every request with its path."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


# What ``Threads``' apis share: events a call waits for, set by another call.
GATES: dict[str, threading.Event] = {}


@asgiserve.service
class Threads:
    """Sync apis that show where they run and that wait for each other or for the loop."""

    @asgiserve.on_startup
    async def keep_loop(self) -> None:
        self.loop = asyncio.get_running_loop()

    @asgiserve.api
    def where(self) -> dict[str, Any]:
        try:
            asyncio.get_running_loop()
            loop_running = True
        except RuntimeError:
            loop_running = False
        return {"thread": threading.get_ident(), "loop_running": loop_running}

    @asgiserve.api
    def wait(self, key: str) -> str:
        """Block until ``release(key)``: a call that only another call ends."""
        return "released" if GATES.setdefault(key, threading.Event()).wait(5) else "timed out"

    @asgiserve.api
    def release(self, key: str) -> str:
        GATES.setdefault(key, threading.Event()).set()
        return "ok"

    @asgiserve.api
    def via_loop(self, text: str) -> str:
        """Wait, from the api's thread, for a coroutine run on the service's loop."""

        async def upper() -> str:
            await asyncio.sleep(0.01)
            return text.upper()

        return asyncio.run_coroutine_threadsafe(upper(), self.loop).result(timeout=5)
