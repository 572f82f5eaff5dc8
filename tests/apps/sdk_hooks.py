"""Services with BentoML's lifecycle hooks and probes; each step is appended to the file named by
``SDK_HOOK_LOG`` as ``<step> <pid>``, so that tests can read the order across processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import asgiserve


def note(step: str) -> None:
    """Append ``step`` and this process's id to the hook log (one write: workers append concurrently)."""
    path = os.environ.get("SDK_HOOK_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{step} {os.getpid()}\n")


@contextlib.asynccontextmanager
async def mounted_lifespan(app: Starlette) -> AsyncIterator[None]:
    note("mount-startup")
    yield
    note("mount-shutdown")


async def hello(request: object) -> PlainTextResponse:
    return PlainTextResponse("hello from the mount")


mounted = Starlette(routes=[Route("/hello", hello)], lifespan=mounted_lifespan)


@asgiserve.service(workers=2)
@asgiserve.asgi_app(mounted, path="/sub")
class Hooked:
    """Every kind of hook, several of each, declared out of alphabetical order."""

    @asgiserve.on_deployment
    def prepare_b() -> None:
        note("deploy-b")

    @asgiserve.on_deployment
    def prepare_a() -> None:
        note("deploy-a")

    def __init__(self) -> None:
        note("init")
        self.started: list[str] = []

    @asgiserve.on_startup
    async def warm_b(self) -> None:
        await asyncio.sleep(0)
        self.started.append("b")
        note("startup-b")

    @asgiserve.on_startup
    def warm_a(self) -> None:
        self.started.append("a")
        note("startup-a")

    @asgiserve.on_shutdown
    def close_b(self) -> None:
        note("shutdown-b")

    @asgiserve.on_shutdown
    async def close_a(self) -> None:
        await asyncio.sleep(0)
        note("shutdown-a")

    @asgiserve.api
    def started_hooks(self) -> list[str]:
        return self.started


@asgiserve.service
class OneWorker(Hooked):
    """The same hooks with one worker."""


@asgiserve.service
class Probed:
    """``__is_ready__`` (sync, so in a thread) and ``__is_alive__`` (async) driven by an api."""

    def __init__(self) -> None:
        self.ready = True
        self.alive = True
        self.ready_threads: list[str] = []

    def __is_ready__(self) -> bool:
        self.ready_threads.append(threading.current_thread().name)
        return self.ready

    async def __is_alive__(self) -> bool:
        return self.alive

    @asgiserve.api
    async def set_state(self, ready: bool = True, alive: bool = True) -> dict[str, object]:
        self.ready, self.alive = ready, alive
        # Who ran the probe, and who runs the event loop: they must differ.
        return {"probe_threads": sorted(set(self.ready_threads)), "loop": threading.current_thread().name}


@asgiserve.service
class FailingStartup:
    """A startup hook that raises: the server must not start."""

    @asgiserve.on_startup
    def connect(self) -> None:
        raise ConnectionError("cache cluster unreachable at startup")

    @asgiserve.api
    def ping(self) -> str:
        return "pong"


@asgiserve.service(workers=2)
class FailingDeployment:
    """A deployment hook that raises: no worker may start."""

    @asgiserve.on_deployment
    def download() -> None:
        note("deploy-attempt")
        raise RuntimeError("model registry refused the download")

    def __init__(self) -> None:
        note("init")

    @asgiserve.api
    def ping(self) -> str:
        return "pong"


probed_app = asgiserve.to_asgi(Probed)
failing_startup_app = asgiserve.to_asgi(FailingStartup)
