"""Services whose mounted apps record lifespan events to the file named in ``MOUNT_EVENTS``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from quart import Quart
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import asgiserve


def record(event: str) -> None:
    with open(os.environ["MOUNT_EVENTS"], "a") as fh:
        fh.write(event + "\n")


@asynccontextmanager
async def fastapi_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    await asyncio.sleep(0.2)  # a slow startup still finishes before /readyz turns 200
    record(f"fastapi startup (service {asgiserve.get_current_service().name})")
    yield {"pool": "fastapi-pool"}
    record("fastapi shutdown")


fast = FastAPI(lifespan=fastapi_lifespan)


@fast.get("/state")
async def state(request: Request) -> str:
    return request.state.pool


@asynccontextmanager
async def starlette_lifespan(app: Starlette) -> AsyncIterator[None]:
    record("starlette startup")
    yield
    record("starlette shutdown")


async def star_ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("star")


star = Starlette(routes=[Route("/", star_ok)], lifespan=starlette_lifespan)
quart = Quart(__name__)


@quart.before_serving
async def quart_startup() -> None:
    record("quart startup")


@quart.after_serving
async def quart_shutdown() -> None:
    record("quart shutdown")


@quart.get("/")
async def quart_ok() -> str:
    return "quart"


async def http_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw app with no lifespan support: it refuses other scope types."""
    assert scope["type"] == "http", "http only"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
    await send({"type": "http.response.body", "body": b"raw"})


async def returns_at_once(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Another way to lack lifespan support: return without taking any message."""
    if scope["type"] == "http":
        await http_only(scope, receive, send)


@asgiserve.service
@asgiserve.mount_asgi_app(returns_at_once, path="/plain")
@asgiserve.mount_asgi_app(quart, path="/quart")
@asgiserve.mount_asgi_app(http_only, path="/raw")
@asgiserve.mount_asgi_app(star, path="/star")
@asgiserve.mount_asgi_app(fast, path="/fast")
class Lifespans:
    name = "Lifespans"

    def __init__(self) -> None:
        record("service init")

    @asgiserve.api
    def ping(self) -> str:
        return "pong"


@asynccontextmanager
async def broken_lifespan(app: Starlette) -> AsyncIterator[None]:
    raise RuntimeError("database unreachable")
    yield  # pragma: no cover


async def failing_raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw app that takes the startup message and then raises: a failed startup."""
    message = await receive()
    assert message["type"] == "lifespan.startup"
    raise ValueError("cache directory is read-only")


@asgiserve.service
@asgiserve.mount_asgi_app(Starlette(lifespan=broken_lifespan), path="/broken")
@asgiserve.mount_asgi_app(star, path="/star")
class BrokenStartup:
    @asgiserve.api
    def ping(self) -> str:
        return "pong"


@asgiserve.service
@asgiserve.mount_asgi_app(failing_raw, path="/raw")
class BrokenRaw:
    @asgiserve.api
    def ping(self) -> str:
        return "pong"


# -- one raw app per lifespan rule, served by the server itself or mounted in a service ------------------


async def _answer(scope: dict[str, Any], send: Any) -> None:
    body = scope["root_path"].encode() or b"served"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def rule_app(rule: str) -> Any:
    """A raw ASGI app whose lifespan does what ``rule`` names (see ``tests/test_lifespan_rules.py``)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await _answer(scope, send)
            return
        if rule == "raises-before-taking":
            raise RuntimeError("http only")
        if rule == "returns-before-taking":
            return
        assert (await receive())["type"] == "lifespan.startup"
        if rule == "raises-after-taking":
            raise ValueError("cache directory is read-only")
        if rule == "returns-after-taking":
            return
        if rule == "answers-failed":
            await send({"type": "lifespan.startup.failed", "message": "disk full"})
            return
        await send({"type": "lifespan.startup.complete"})
        if rule == "raises-while-served":
            raise KeyError("pool gone")
        if rule == "answers-twice":
            try:
                await send({"type": "lifespan.startup.complete"})
            except RuntimeError as exc:
                record(f"second answer refused: {exc}")
        assert (await receive())["type"] == "lifespan.shutdown"
        if rule == "fails-shutdown":
            await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
            return
        record("shutdown")
        await send({"type": "lifespan.shutdown.complete"})

    return app


RULES = [
    "raises-before-taking",
    "returns-before-taking",
    "raises-after-taking",
    "returns-after-taking",
    "answers-failed",
    "raises-while-served",
    "answers-twice",
    "fails-shutdown",
]
RULE_APPS = {rule: rule_app(rule) for rule in RULES}


def _mounting(rule: str) -> type:
    @asgiserve.service
    @asgiserve.mount_asgi_app(RULE_APPS[rule], path="/m")
    class Mounting:
        name = "Mounting"

        @asgiserve.api
        def ping(self) -> str:
            return "pong"

    return Mounting


# ``tests.apps.mount_lifespan:served_<rule>`` is the app alone, ``mounting_<rule>`` a service mounting it.
for _rule in RULES:
    globals()["served_" + _rule.replace("-", "_")] = RULE_APPS[_rule]
    globals()["mounting_" + _rule.replace("-", "_")] = _mounting(_rule)
