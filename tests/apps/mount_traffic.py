"""A service with tight traffic rules and a mounted FastAPI app, to check the rules apply to it."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

import asgiserve

slow = FastAPI()


@slow.get("/sleep")
async def sleep(seconds: float = 0.0) -> dict[str, float]:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@slow.get("/boom")
async def boom() -> None:
    raise RuntimeError("mounted route failed")


@asgiserve.service(traffic={"timeout": 0.5, "max_concurrency": 3})
@asgiserve.mount_asgi_app(slow, path="/m")
class Limited:
    @asgiserve.api
    async def wait(self, seconds: float = 0.0) -> float:
        await asyncio.sleep(seconds)
        return seconds
