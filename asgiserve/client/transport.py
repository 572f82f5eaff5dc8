"""What a client's calls need from the connections under them: the seam between the calls and the I/O.

``_async_client`` (and the generated ``_sync_client``) send whole requests, already encoded, and read
``wire.Response`` objects back; any pool with these methods will do. The socket pools (``aiopool``,
``pool``) are the usual ones; ``asgiserve.testing`` puts the server's own protocol on the other end of an
in-memory pipe instead, so that a test client goes through the same wire code without a socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Protocol

from .wire import Response

__all__ = ["AsyncBody", "AsyncPool", "Body", "Pool"]


class AsyncBody(Protocol):
    """A streamed response's body: its chunks as they arrive, and ``close`` to give the connection back."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class AsyncPool(Protocol):
    """Connections to one server for the asyncio client."""

    async def request(self, data: bytes, *, head: bool = False) -> tuple[Response, object]:
        """Send a whole request and return the whole response (and what carried it)."""

    async def stream(self, data: bytes) -> tuple[Response, AsyncBody]:
        """Send a whole request and return the response once its head arrived, with its body."""

    async def close(self) -> None:
        """Close the connections."""


class Body(Protocol):
    """A streamed response's body for the blocking client."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class Pool(Protocol):
    """Connections to one server for the blocking client."""

    def request(self, data: bytes, *, head: bool = False) -> tuple[Response, object]:
        """Send a whole request and return the whole response (and what carried it)."""

    def stream(self, data: bytes) -> tuple[Response, Body]:
        """Send a whole request and return the response once its head arrived, with its body."""

    def close(self) -> None:
        """Close the connections."""
