"""One request as its connection sees it, in one of two roles: an ASGI request cycle (``cycle.py``) or a
direct api call (``APICall``, below). Both take the request body as it arrives, the same way."""

from __future__ import annotations

import asyncio
from typing import Protocol

from ..types import DirectHandler, Headers
from .flow_control import FlowControl
from .state import ServerState, split_target
from .wire import ResponseHead, response_head

__all__ = ["HOLD_PIECES", "APICall", "Exchange"]

HOLD_PIECES = 16  # a stream's pieces held at most before they are written anyway


class Exchange:
    """The request side both roles share: keep-alive, HTTP/1.0, the body as it arrives, the status sent."""

    __slots__ = (
        "body_done",
        "buffered",
        "chunks",
        "direct",
        "disconnected",
        "finished",
        "http10",
        "keep_alive",
        "received",
        "resumed",
        "sent",
        "status",
        "task",
        "waiter",
    )

    def __init__(self, keep_alive: bool, http10: bool) -> None:
        self.keep_alive = keep_alive
        self.http10 = http10
        self.direct = False  # a direct api call (``APICall``), else an ASGI request (``RequestCycle``)
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.received = 0
        self.body_done = False
        self.finished = False
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None  # a ``receive`` waiting for body or disconnect
        self.status = 0
        self.sent = 0
        self.task: asyncio.Task[None] | None = None  # the task running it
        self.resumed = False  # came back from the event loop: set by the runner (``runner._carry``)

    def wake(self) -> None:
        """Wake a ``receive`` waiting for body or disconnect."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def on_disconnect(self) -> None:
        """The peer is gone: nothing more is sent for this request."""
        self.disconnected = True
        self.wake()

    def describe(self) -> tuple[str, str, bytes, str]:
        """``(method, path, query, HTTP version)``, for the access log."""
        raise NotImplementedError


class Output(Protocol):
    """The part of a connection a streamed api answer writes to."""

    server: ServerState
    transport: asyncio.Transport
    flow: FlowControl
    loop: asyncio.AbstractEventLoop

    def write(self, data: bytes) -> None:
        """Write now, after any responses held for the end of the loop pass."""

    def stream_fields(self, call: APICall) -> Headers | None:
        """More header fields for the head of ``call``'s stream (the access log's request id), or None."""


class APICall(Exchange):
    """A ``POST`` to an api answered without ASGI: the request head the handler needs, and the call's state.

    A streaming api's call is also its ``types.ChunkWriter``: ``head`` is set once its response began.
    """

    __slots__ = ("extra", "handler", "head", "headers", "held", "out", "own", "rid", "t0", "target")

    def __init__(
        self,
        out: Output,
        handler: DirectHandler,
        headers: Headers,
        target: bytes,
        keep_alive: bool,
        http10: bool,
        rid: bytes | None = None,
    ) -> None:
        super().__init__(keep_alive, http10)
        self.direct = True
        self.out = out
        self.handler = handler
        self.headers = headers  # the request's header fields
        self.target = target  # for the access log
        self.rid = rid  # the request's own X-Request-ID, for the access log
        self.t0 = 0.0
        self.own: object = False  # its coroutine is the api's own (see ``types.Started``)
        self.head: ResponseHead | None = None  # a stream's response head, once written
        self.extra: Headers | None = None  # what ``stream_fields`` gave its stream's head (the log's id)
        self.held: list[bytes] | None = None  # a stream's pieces not written yet (see ``piece``)

    # -- types.ChunkWriter, for streaming apis ----------------------------------------------------------

    def begin(self, content_type: bytes, first: bytes) -> None:
        """Write the head of a 200 streamed response (chunked; HTTP/1.0: until close) with ``first``."""
        out = self.out
        server = out.server
        fields: Headers = [(b"content-type", content_type)]
        extra = out.stream_fields(self)
        if extra is not None:
            fields += extra
        head = self.head = response_head(
            200,
            fields,
            server.defaults,
            self.keep_alive and not server.draining,
            self.http10,
            False,
            -1,
        )
        self.status = 200
        server.streams += 1
        if not first:
            out.write(head.data)
        elif head.chunked:
            out.write(b"%s%x\r\n%s\r\n" % (head.data, len(first), first))
            self.sent = len(first)
        else:
            out.write(head.data + first)
            self.sent = len(first)

    def piece(self, data: bytes) -> bool:
        """Write one more piece of the body; True when the writer must ``drain`` first.

        Beside other streams, a piece waits for the end of the next loop pass with the pieces that come
        meanwhile: a loop serving many streams then makes one write (one system call) of several pieces
        per stream instead of one per piece. A lone stream writes each piece at once.
        """
        out = self.out
        if data and not self.disconnected:
            head = self.head
            assert head is not None
            framed = b"%x\r\n%s\r\n" % (len(data), data) if head.chunked else data
            self.sent += len(data)
            held = self.held
            if held is not None:
                held.append(framed)
                if len(held) >= HOLD_PIECES:
                    self.write_held()
            elif out.server.streams > 1:
                self.held = [framed]
                out.loop.call_soon(self._next_pass)
            else:
                out.transport.write(framed)
        return out.flow.write_paused

    def _next_pass(self) -> None:
        self.out.loop.call_soon(self.write_held)

    def write_held(self) -> None:
        """Write the pieces ``piece`` holds (before the stream's end, a cut, or the next response)."""
        held = self.held
        if held is not None:
            self.held = None
            if not self.disconnected:
                self.out.transport.write(held[0] if len(held) == 1 else b"".join(held))

    async def drain(self) -> None:
        """Wait until the transport takes more (or the client is gone)."""
        await self.out.flow.drain()

    def describe(self) -> tuple[str, str, bytes, str]:
        """``(method, path, query, HTTP version)``, for the access log."""
        path, _, query = split_target(self.target)
        return "POST", path, query, "1.0" if self.http10 else "1.1"

    def reuse(
        self,
        handler: DirectHandler,
        headers: Headers,
        target: bytes,
        keep_alive: bool,
        http10: bool,
        rid: bytes | None,
    ) -> None:
        """Serve another api call with this finished one: resetting what a call changes costs less than a
        new object's slots to allocate, fill and free."""
        self.handler = handler
        self.headers = headers
        self.target = target
        self.rid = rid
        self.keep_alive = keep_alive
        self.http10 = http10
        self.buffered = self.received = 0
        self.body_done = self.finished = False
        self.task = None  # (``head`` is None here: a stream's call is reused only once it ended)
