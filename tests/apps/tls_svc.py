"""A service served over https in the TLS tests: plain, async and streaming apis, and a mounted raw ASGI
app that tells what the server put in its scope (scheme, client address) over http and websocket.

``TLSConfigured`` takes its certificate from ``ssl={...}``, BentoML's way, with paths from the
``TLS_TEST_CERT`` / ``TLS_TEST_KEY`` variables the tests set.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Generator
from typing import Any

import asgiserve


async def info(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``GET /info/``: the scope's scheme, client and HTTP version; a websocket: the same, then echo."""
    seen = {"scheme": scope["scheme"], "client": list(scope["client"] or ()), "type": scope["type"]}
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(seen)})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + (message.get("text") or "")})
    if scope["type"] != "http":
        return
    body = json.dumps({**seen, "http_version": scope["http_version"]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asgiserve.service
@asgiserve.mount_asgi_app(info, path="/info")
class TLSSvc:
    @asgiserve.api
    def echo(self, text: str) -> str:
        return text

    @asgiserve.api
    async def add(self, a: int, b: int = 0) -> int:
        await asyncio.sleep(0)
        return a + b

    @asgiserve.api
    def count(self, n: int = 3) -> Generator[str, None, None]:
        for i in range(n):
            yield f"{i};"

    @asgiserve.api
    async def numbers(self, n: int = 3) -> AsyncGenerator[dict[str, int], None]:
        for i in range(n):
            await asyncio.sleep(0.001)
            yield {"i": i}


@asgiserve.service(
    ssl={"certfile": os.environ.get("TLS_TEST_CERT", ""), "keyfile": os.environ.get("TLS_TEST_KEY") or None}
)
class TLSConfigured:
    @asgiserve.api
    def echo(self, text: str) -> str:
        return text


@asgiserve.service(ssl={"enabled": True})
class TLSEnabledNoCert:
    @asgiserve.api
    def echo(self, text: str) -> str:
        return text


app = asgiserve.to_asgi(TLSSvc)
