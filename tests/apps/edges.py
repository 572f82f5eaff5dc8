"""A service exercising edge cases: slow sync streams, iterator returns, SSE text, file and body limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Optional

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

import asgiserve


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


ws_app = Starlette(routes=[WebSocketRoute("/echo", ws_echo)])


async def _letters() -> AsyncIterator[str]:
    for c in "xyz":
        yield c


@asgiserve.service(traffic={"timeout": 1}, threads=2)
@asgiserve.mount_asgi_app(ws_app, path="/ws")
class Edges:
    def __init__(self) -> None:
        self.file = Path(__file__)

    @asgiserve.api
    def slow_first(self, delay: float = 3.0) -> Generator[str, None, None]:
        time.sleep(delay)
        yield "late"

    @asgiserve.api
    def unencodable(self) -> Iterator[dict]:
        yield {"x": object()}

    @asgiserve.api
    def letters(self) -> Iterator[str]:
        return iter(["a", "b", "c"])

    @asgiserve.api
    async def aletters(self) -> AsyncIterator[str]:
        await asyncio.sleep(0)
        return _letters()

    @asgiserve.api(media_type="text/event-stream")
    async def sse_text(self) -> AsyncIterator[str]:
        yield "line1\rline2"

    @asgiserve.api
    def maybe_file(self, give: bool = True) -> Optional[Path]:
        return self.file if give else None

    @asgiserve.api
    async def swallow(self) -> str:
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    @asgiserve.api
    async def size(self, data: str = "") -> int:
        return len(data)

    @asgiserve.api
    async def upload(self, f: bytes) -> int:
        return len(f)


app = asgiserve.to_asgi(Edges, max_body_size=1000)
token_app = asgiserve.to_asgi(Edges, api_token="s3cret")
