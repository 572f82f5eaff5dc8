"""One request as its connection sees it, in one of two roles: an ASGI request cycle (``cycle.py``) or a
direct api call (``APICall``, below). Both take the request body as it arrives, the same way."""

from __future__ import annotations

import asyncio

from ..types import DirectHandler, Headers
from .state import split_target

__all__ = ["APICall", "Exchange"]


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


class APICall(Exchange):
    """A ``POST`` to an api answered without ASGI: the request head the handler needs, and the call's state."""

    __slots__ = ("handler", "headers", "own", "t0", "target")

    def __init__(
        self, handler: DirectHandler, headers: Headers, target: bytes, keep_alive: bool, http10: bool
    ) -> None:
        super().__init__(keep_alive, http10)
        self.direct = True
        self.handler = handler
        self.headers = headers  # the request's header fields
        self.target = target  # for the access log
        self.t0 = 0.0
        self.own = False  # its coroutine is the api's own (see ``types.Started``)

    def describe(self) -> tuple[str, str, bytes, str]:
        """``(method, path, query, HTTP version)``, for the access log."""
        path, _, query = split_target(self.target)
        return "POST", path, query, "1.0" if self.http10 else "1.1"

    def reuse(
        self, handler: DirectHandler, headers: Headers, target: bytes, keep_alive: bool, http10: bool
    ) -> None:
        """Serve another api call with this finished one: resetting what a call changes costs less than a
        new object's slots to allocate, fill and free."""
        self.handler = handler
        self.headers = headers
        self.target = target
        self.keep_alive = keep_alive
        self.http10 = http10
        self.buffered = self.received = 0
        self.body_done = self.finished = False
        self.task = None
