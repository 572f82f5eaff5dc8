"""Flow control both ways for one connection.

Reading: the protocol pauses the transport when a request body piles up faster than the app reads it
(above ``HIGH_WATER`` buffered bytes) or when pipelined requests queue behind the current one, and resumes
once the app has taken the body. Writing: the transport calls ``pause_writing`` when its buffer is over its
own high-water mark; ``send`` then waits in ``drain`` until ``resume_writing`` (or the peer is gone).
"""

from __future__ import annotations

import asyncio

__all__ = ["HIGH_WATER", "FlowControl"]

HIGH_WATER = 256 * 1024


class FlowControl:
    """Read pausing and write draining for one transport."""

    __slots__ = ("_transport", "_waiter", "read_paused", "write_paused")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.read_paused = False
        self.write_paused = False
        self._waiter: asyncio.Future[None] | None = None

    def pause_reading(self) -> None:
        """Stop reading from the socket."""
        if not self.read_paused:
            self.read_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the socket again."""
        if self.read_paused:
            self.read_paused = False
            if not self._transport.is_closing():
                self._transport.resume_reading()

    def pause_writing(self) -> None:
        """The transport's write buffer is full."""
        self.write_paused = True

    def resume_writing(self) -> None:
        """The transport's write buffer drained: wake the writer."""
        self.write_paused = False
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport accepts more data (returns at once when it already does)."""
        if self.write_paused:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
