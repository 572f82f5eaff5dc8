"""What a request cycle and a websocket session see of their connection (``HTTPProtocol`` has it)."""

from __future__ import annotations

import asyncio
from contextvars import Context
from typing import Protocol

from ..types import ASGIApp
from .exchange import Exchange
from .flow_control import FlowControl
from .state import ServerState

__all__ = ["Port"]


class Port(Protocol):
    """A connection, narrowed to what the request's side needs: write, close, flow control, completion."""

    app: ASGIApp
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    flow: FlowControl
    server: ServerState
    context: Context
    client: tuple[str, int] | None
    sockname: tuple[str, int] | None

    def write(self, data: bytes) -> None:
        """Write now, after any responses held for the end of the loop pass."""

    def emit(self, data: bytes) -> None:
        """Write a whole response, coalesced with the others of this loop pass."""

    def flush(self) -> None:
        """Write the responses held for the end of the loop pass."""

    def close(self) -> None:
        """Close once everything owed is written."""

    def response_complete(self, exchange: Exchange, keep_alive: bool) -> None:
        """``exchange`` sent its last byte: close, or go on to the next request."""

    def body_taken(self, exchange: Exchange) -> None:
        """The body ``exchange`` had buffered was handed to its app: reading may resume."""
