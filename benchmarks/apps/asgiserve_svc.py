"""asgiserve peer: the predict api (async and sync), a token stream, and GET /hello as a mounted ASGI app.

Served by ``python -m asgiserve asgiserve_svc:Predict`` and, as ``app``, by uvicorn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from workload import HELLO_RESPONSE, TOKEN

import asgiserve

_HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(HELLO_RESPONSE)).encode()),
    ],
}
_HELLO_BODY = {"type": "http.response.body", "body": HELLO_RESPONSE}


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app answering ``{"message":"hello"}``: asgiserve serves GETs through mounts."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_HELLO_START)
    await send(_HELLO_BODY)


class Prediction(msgspec.Struct):
    """The predict output."""

    result: str
    length: int


@asgiserve.service(name="Predict")
@asgiserve.mount_asgi_app(hello_app, path="/hello")
class Predict:
    """The benchmark service."""

    @asgiserve.api
    async def predict(self, text: str) -> Prediction:
        """Upper-case the text."""
        return Prediction(result=text.upper(), length=len(text))

    @asgiserve.api
    async def predict_ctx(self, text: str, ctx) -> Prediction:
        """The predict api taking BentoML's request ``Context`` (unannotated, as BentoML allows: the app
        still loads on a tree without Context, for ``instructions.py --root``)."""
        ctx.response.headers["x-length"] = str(len(text))
        return Prediction(result=text.upper(), length=len(text))

    @asgiserve.api
    async def predict_ctx_unused(self, text: str, ctx) -> Prediction:
        """The predict api taking a ``Context`` it does not use."""
        return Prediction(result=text.upper(), length=len(text))

    @asgiserve.api
    def predict_sync(self, text: str) -> Prediction:
        """The same work as a sync api (runs in the service's thread pool)."""
        return Prediction(result=text.upper(), length=len(text))

    @asgiserve.api
    async def stream(self, text: str, tokens: int = 64) -> AsyncGenerator[str, None]:
        """Yield ``tokens`` tokens, giving the loop a turn between them."""
        for _ in range(tokens):
            await asyncio.sleep(0)
            yield TOKEN


app = asgiserve.to_asgi(Predict)
