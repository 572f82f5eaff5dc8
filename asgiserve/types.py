"""The types at asgiserve's seams: ASGI's callables and messages, and the contract between the server and an app.

ASGI scopes and messages are plain dicts whose values differ by key, as the ASGI spec defines them, so they
are typed once here as ``dict[str, Any]`` and every module uses these names instead of its own aliases.

The direct-call contract lets asgiserve's own server answer a ``POST`` to an api without ASGI messages
(``http/connection.py``), with the same rules as the ASGI path (``handlers.py``, ``traffic.py``):

- ``DirectApp.direct_handler(path)`` gives the handler for a path, or None (files, mounts);
- ``DirectHandler.start(headers, body, task, t0)`` admits and decodes the call: an ``Answer`` to send now
  (refused, bad input) or a ``Started`` call for the server to run as ``task``; a streaming api
  (``DirectHandler.streams``) is started with ``start_stream``, whose call writes its items to a
  ``ChunkWriter`` and ends with the answer's status (or a whole ``Answer`` when nothing was written);
  a handler with ``wants_head`` (an api taking a ``Context``) is started by ``start_head``, which gets
  the request head (headers and target) and the peer's address;
- ``DirectHandler.finish(task, t0, own, result, error)`` turns how it ended into the ``Answer`` to send
  (None: cancelled by the server, not by the deadline: the connection is cut).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

__all__ = [
    "ASGIApp",
    "Answer",
    "ChunkWriter",
    "DirectApp",
    "DirectHandler",
    "Headers",
    "Message",
    "Receive",
    "RequestHead",
    "Scope",
    "Send",
    "Started",
]

# ASGI 3 (https://asgi.readthedocs.io/en/latest/specs/main.html).
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Header fields as the server hands them over: lowercased names, raw values, in order.
Headers = list[tuple[bytes, bytes]]

# A whole response: (status, content type, body, extra header fields or None).
Answer = tuple[int, bytes, bytes, "Headers | None"]


# An admitted api call for the server to run in the call's task: (coroutine, own). ``own`` is true when the
# coroutine is the api's own (its result still needs encoding by ``finish``, which is given ``own`` back as
# it was: a handler may make it an object of its own), False when it is asgiserve's, which returns a whole
# ``Answer``. A plain 2-tuple (an ``Answer`` has 4 items): no class to build per call.
Started = tuple[Coroutine[Any, Any, object], object]


class ChunkWriter(Protocol):
    """Where a direct stream writes: the response head with the first item, then each item as it comes."""

    disconnected: bool  # the client is gone: nothing more is written
    resumed: bool  # set each time the call comes back from the event loop (a stream that never waits
    # gets turns: the stream clears it)

    def begin(self, content_type: bytes, first: bytes) -> None:
        """Write the head of a 200 streamed response with the first piece of its body."""
        ...

    def piece(self, data: bytes) -> bool:
        """Write one more piece of the body; True when the writer must ``drain`` before the next."""
        ...

    async def drain(self) -> None:
        """Wait until the connection takes more (the client reads slower than the stream produces)."""
        ...


class RequestHead(Protocol):
    """What ``DirectHandler.start_head`` reads of a request: its header fields and its target."""

    headers: Headers
    target: bytes


class DirectHandler(Protocol):
    """One api as a server may call it directly (see the module docstring)."""

    route: str
    streams: bool  # started with ``start_stream``, not ``start``
    wants_head: bool  # True: the server calls ``start_head`` instead of ``start``

    def start(self, headers: Headers, body: bytes, task: object, t0: float) -> Answer | Started:
        """Admit and decode one call whose whole body is at hand."""
        ...

    def start_stream(
        self, headers: Headers, body: bytes, task: object, t0: float, out: ChunkWriter
    ) -> Answer | Started:
        """Admit one streaming call: its coroutine writes to ``out`` and returns how the response ends."""

    def start_head(
        self, head: RequestHead, client: tuple[str, int] | None, body: bytes, task: object, t0: float
    ) -> Answer | Started:
        """``start`` for a handler that also reads the request target and the peer's address."""
        ...

    def finish(
        self, task: object, t0: float, own: object, result: object, error: BaseException | None
    ) -> Answer | None:
        """The answer for a started call that returned ``result`` or raised ``error``."""
        ...


class DirectApp(Protocol):
    """An ASGI app that also offers direct calls to some of its ``POST`` routes."""

    routes: dict[str, object]

    def direct_handler(self, path: str) -> DirectHandler | None:
        """The direct handler for ``POST path``, or None when that path needs ASGI."""
        ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 entry point."""
        ...
