"""Streaming apis over ASGI: items produced one at a time (on the loop, or in the thread pool for a sync
generator), encoded as text, JSON lines or SSE events, and sent as they come.

The first item is produced and encoded under the deadline, so an error there is an ordinary error
response; once the response has started, an error ends it without its last chunk so the client can tell.
A client that goes away stops the stream; the generator is always closed (a sync one still inside
``next()`` once that returns).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from .codec import encode_json
from .context import ResponseContext
from .traffic import Gate
from .types import Receive, Send

__all__ = ["STOP", "Items", "encode_item", "send_stream"]

logger = logging.getLogger("asgiserve")
STOP = object()  # the stream is exhausted


class Items:
    """The items of one stream api's iterator, each produced on the loop (async) or in the pool (sync)."""

    __slots__ = ("_executor", "_gate", "_gen", "_is_async", "_running")

    def __init__(self, gen: object, is_async: bool, executor: ThreadPoolExecutor, gate: Gate) -> None:
        self._gen = gen
        self._is_async = is_async
        self._executor = executor
        self._gate = gate
        self._running: Future[object] | None = None  # a sync ``next()`` still running in the pool

    async def next(self) -> object:
        """The next item, or ``STOP``."""
        if self._is_async:
            agen: AsyncIterator[object] = self._gen  # type: ignore[assignment]
            try:
                return await agen.__anext__()
            except StopAsyncIteration:
                return STOP
        sgen: Iterator[object] = self._gen  # type: ignore[assignment]
        running = self._running = self._executor.submit(next, sgen, STOP)
        try:
            item = await asyncio.wrap_future(running)
        except asyncio.CancelledError:
            if not running.done():
                self._gate.hold_slot_until(running)  # the thread goes on: keep its slot taken
            raise
        self._running = None
        return item

    async def close(self) -> None:
        """Close the generator; a sync one still inside ``next()`` is closed once that returns."""
        gen = self._gen
        if self._is_async:
            aclose = getattr(gen, "aclose", None)
            if aclose is not None:
                await aclose()
            return
        close = getattr(gen, "close", None)
        if close is None:
            return
        running = self._running
        if running is not None and not running.done():
            running.add_done_callback(lambda _: close())
        else:
            await asyncio.get_running_loop().run_in_executor(self._executor, close)


def encode_item(item: object, sse: bool) -> bytes:
    """One item on the wire: text as is, bytes as is, else a JSON line; as a ``data:`` event for SSE."""
    if isinstance(item, str):
        data = item.encode()
    elif isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
    else:
        data = encode_json(item) + (b"" if sse else b"\n")
    if sse:
        lines = data.decode().splitlines() or [""]
        return ("".join(f"data: {line}\n" for line in lines) + "\n").encode()
    return data


async def send_stream(
    items: Items,
    content_type: bytes,
    sse: bool,
    gate: Gate,
    receive: Receive,
    send: Send,
    name: str,
    response: ResponseContext | None = None,
) -> int | None:
    """Send every item as a chunk; returns the status, or None when the first item failed (nothing was sent).

    ``response`` (an api's ``ctx.response``) gives the status, headers and cookies, as the api set them up
    to its first item."""
    try:
        first = await items.next()
        chunk = encode_item(first, sse) if first is not STOP else b""
    except Exception:
        logger.exception("api %s raised before its first item", name)
        return None
    gate.response_started(asyncio.current_task())
    disconnected = asyncio.Event()

    async def watch() -> None:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                disconnected.set()
                return

    status, extra = 200, None
    if response is not None:
        status, content_type, extra = response.apply(200, content_type, None)
    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        headers = [(b"content-type", content_type)]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        item = first
        while item is not STOP and not disconnected.is_set():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            item = await items.next()
            if item is not STOP:
                chunk = encode_item(item, sse)
        if not disconnected.is_set():
            await send({"type": "http.response.body", "body": b""})
    finally:
        watcher.cancel()
    return status
