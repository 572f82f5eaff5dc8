"""Streaming apis: items produced one at a time (on the loop, or in the thread pool for a sync generator),
encoded as text, JSON lines or SSE events, and sent as they come: over ASGI (``send_stream``), or straight
to asgiserve's own connection (``write_stream``, a ``types.ChunkWriter``), with the same bytes.

The first item is produced and encoded under the deadline, so an error there is an ordinary error
response; once the response has started, an error ends it without its last chunk so the client can tell.
A client that goes away stops the stream; the generator is always closed (a sync one still inside
``next()`` once that returns). A generator that never waits would hold the event loop for as long as it
runs: written directly, a stream that went ``FAIR_SLICE`` seconds without the loop taking a turn gives it one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic

from .codec import JSON_CT, encode_json
from .context import ResponseContext
from .responses import error_body
from .traffic import Gate
from .types import Answer, ChunkWriter, Receive, Send

__all__ = ["FAIR_SLICE", "STOP", "STREAMED", "Items", "Opened", "Writer", "encode_item", "send_stream"]

logger = logging.getLogger("asgiserve")
STOP = object()  # the stream is exhausted
# A stream's iterator, and what cleans up its input files afterwards.
Opened = tuple[object, "Callable[[], None] | None"]
INTERNAL: Answer = (500, JSON_CT, error_body("Internal Server Error"), None)
FAIR_SLICE = 0.002  # seconds a direct stream may hold the loop before it gives other connections a turn


class Items:
    """The items of one stream api's iterator, each produced on the loop (async) or in the pool (sync)."""

    __slots__ = ("_executor", "_gate", "_gen", "_is_async", "_running", "anext")

    def __init__(self, gen: object, is_async: bool, executor: ThreadPoolExecutor, gate: Gate) -> None:
        self._gen = gen
        self._is_async = is_async
        self._executor = executor
        self._gate = gate
        self._running: Future[object] | None = None  # a sync ``next()`` still running in the pool
        # An async generator's own ``__anext__``, awaited directly by ``write_stream`` (None for sync).
        self.anext: Callable[[], Awaitable[object]] | None = gen.__anext__ if is_async else None  # type: ignore[attr-defined]

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


class Writer:
    """Writes one streaming api's responses straight to asgiserve's connection (a ``types.ChunkWriter``),
    with the same bytes as ``send_stream`` sends over ASGI; made once per api."""

    __slots__ = ("content_type", "executor", "failed", "gate", "is_async", "name", "sse")

    def __init__(
        self,
        content_type: bytes,
        sse: bool,
        is_async: bool,
        gate: Gate,
        executor: ThreadPoolExecutor,
        failed: Callable[[Exception], Answer],
        name: str,
    ) -> None:
        self.content_type = content_type
        self.sse = sse
        self.is_async = is_async
        self.gate = gate
        self.executor = executor
        self.failed = failed  # the answer for an error raised before the stream began
        self.name = name

    async def write(self, opening: Awaitable[Opened], task: object, out: ChunkWriter) -> Answer | None:
        """Open the stream (``opening``), write every item to ``out`` as it comes; the answer that ends it.

        That answer is a whole one when nothing was written (bad input, or the first item failed: a 500;
        no item at all: an empty 200), ``STREAMED`` (status 200) once the stream ran its course, or None
        when it broke after its head (the connection is cut).
        """
        items: Items | None = None
        cleanup = None
        exiting = False
        try:
            try:
                gen, cleanup = await opening
            except Exception as exc:
                return self.failed(exc)
            items = Items(gen, self.is_async, self.executor, self.gate)
            sse = self.sse
            try:
                first = await items.next()
                chunk = encode_item(first, sse) if first is not STOP else b""
            except Exception:
                logger.exception("api %s raised before its first item", self.name)
                return INTERNAL
            self.gate.response_started(task)
            if first is STOP:
                return 200, self.content_type, b"", None
            out.begin(self.content_type, chunk)
            plain = not sse
            anext = items.anext
            out.resumed = False
            since = 0.0  # when the stream found the loop had had no turn since its previous item
            try:
                while not out.disconnected:
                    if anext is not None:
                        try:
                            item = await anext()
                        except StopAsyncIteration:
                            break
                    else:
                        item = await items.next()
                        if item is STOP:
                            break
                    data = item.encode() if plain and type(item) is str else encode_item(item, sse)
                    if out.piece(data):
                        await out.drain()
                    if out.resumed:  # the loop had a turn since the last item
                        out.resumed = False
                        since = 0.0
                    elif not since:
                        since = monotonic()
                    elif monotonic() - since > FAIR_SLICE:
                        await asyncio.sleep(0)
            except Exception:
                logger.exception("api %s raised while streaming", self.name)
                return None
            return STREAMED
        except GeneratorExit:
            exiting = True  # the loop itself is going away: nothing may be awaited any more
            raise
        finally:
            if items is not None and not exiting:
                await items.close()
            if cleanup is not None:
                cleanup()


STREAMED: Answer = (200, b"", b"", None)  # a stream written to its end
