"""What all connections of one server share: the app, its direct calls, the limits, the Date clock, live
connections and the responses held for the end of a loop pass."""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Protocol
from urllib.parse import unquote

from ..limits import DEFAULT_LIMITS, Limits
from ..types import ASGIApp, DirectHandler
from .wire import ProtocolError

__all__ = ["Live", "ServerState", "split_target", "target_cache"]

logger = logging.getLogger("asgiserve")
# Request targets already split (most requests repeat a few paths), read by the connections first.
target_cache: dict[bytes, tuple[str, bytes, bytes]] = {}


class Phase(enum.IntEnum):
    """Where a connection's reading side is (see ``connection.py``); from CLOSING on, nothing is read."""

    IDLE = 0  # between requests: the keep-alive deadline runs
    HEAD = 1  # a head is arriving: the header deadline runs
    BODY = 2  # a head was read: its body is arriving, or its response is owed
    CLOSING = 3  # nothing more is read; the connection closes once what is owed is written
    UPGRADED = 4  # a websocket session reads the bytes
    CLOSED = 5  # the peer is gone


# The phase is kept as a plain int: comparing IntEnum members costs three times as much, on every request.
IDLE, HEAD, BODY, CLOSING, UPGRADED, CLOSED = (int(p) for p in Phase)


class Holding(Protocol):
    """A connection holding responses for the end of the loop pass."""

    def flush(self) -> None:
        """Write the responses held for the end of the loop pass."""


class Live(Protocol):
    """A connection as the server's tick and drain see it."""

    deadline: float

    def expire(self) -> None:
        """Its keep-alive or header deadline passed."""

    def shutdown(self) -> None:
        """The server is draining."""

    def flush(self) -> None:
        """Write the responses held for the end of the loop pass."""

    def close(self) -> None:
        """Close once everything owed is written."""

    def abort(self) -> None:
        """Cancel the request in flight and close (the graceful timeout passed)."""


class ServerState:
    """The state one server's connections share."""

    def __init__(
        self,
        app: ASGIApp,
        loop: asyncio.AbstractEventLoop,
        limits: Limits = DEFAULT_LIMITS,
        *,
        access_log: bool = False,
        root_path: str = "",
        tls: bool = False,
    ) -> None:
        self.app = app
        self.loop = loop
        self.limits = limits
        self.connections: set[Live] = set()
        self.defaults = b""  # server and date headers, refreshed every second by the server's tick
        self.head_end = b"\r\n"  # the same, then the blank line that ends a head
        self.field_end = b"\r\n\r\n"  # the end of a header field, then ``head_end``: one join item less
        self.now = loop.time()
        self.state: dict[str, object] = {}
        self.draining = False
        self.root_path = root_path
        self.scheme = "https" if tls else "http"  # the scopes' ``scheme``
        self.ws_scheme = "wss" if tls else "ws"
        self.access_log = access_log
        # Read on every request: copied out of ``limits`` so that each check is one attribute away.
        self.max_body = limits.max_body_size
        self.max_header_size = limits.max_header_size
        self.max_headers = limits.max_headers
        self.max_url = limits.max_url_size
        self.header_timeout = limits.header_timeout
        self.keep_alive_timeout = limits.keep_alive_timeout
        self.body_timeout = limits.body_timeout
        # Seconds each body byte adds to the body's deadline (the minimum rate's part; far off when off).
        self.body_per_byte = 1 / limits.body_min_rate if limits.body_min_rate > 0 else 1e9
        self.max_connections = limits.max_connections
        # POST paths answered by direct calls (``types.DirectApp``: an asgiserve service's apis), without
        # ASGI messages; the behaviour is the same as through ``app(scope, receive, send)``.
        self.direct: dict[str, DirectHandler] = {}
        # Connections holding responses for the end of this loop pass (see ``HTTPProtocol.emit``).
        self.held: list[Holding] = []
        self.pass_open = False
        self.streams = 0  # direct streams under way (a stream holds its pieces only beside others)
        direct_handler = getattr(app, "direct_handler", None)
        if callable(direct_handler) and not root_path:
            for path in getattr(app, "routes", {}):
                handler = direct_handler(path)
                if handler is not None:
                    self.direct[path] = handler

    def set_defaults(self, defaults: bytes) -> None:
        """Set the fields every response carries (``server``, ``date``) and the heads' ends made of them."""
        self.defaults = defaults
        self.head_end = defaults + b"\r\n"
        self.field_end = b"\r\n" + self.head_end

    def flush(self) -> None:
        """The loop pass is over: write the responses held back during it."""
        self.pass_open = False
        held = self.held
        if held:
            self.held = []
            for conn in held:
                try:
                    conn.flush()
                except RuntimeError:  # its transport was torn down under it: the others still go out
                    logger.debug("held response dropped for a closed connection", exc_info=True)


def split_target(target: bytes) -> tuple[str, bytes, bytes]:
    """``(path, raw_path, query_string)`` of a request target (origin, absolute or asterisk form)."""
    hit = target_cache.get(target)
    if hit is not None:
        return hit
    if target[:1] == b"/":
        raw, _, query = target.partition(b"?")
    elif target == b"*":
        raw, query = b"*", b""
    else:
        # absolute-form (RFC 9112 3.2.2): keep the path and query, drop scheme and authority.
        _, sep, rest = target.partition(b"://")
        if not sep:
            raise ProtocolError("Invalid request target")
        slash = rest.find(b"/")
        raw, _, query = (rest[slash:] if slash >= 0 else b"/").partition(b"?")
    text = raw.decode("latin-1")
    path = unquote(text) if "%" in text else text
    hit = (path, raw, query)
    if len(target_cache) < 4096:
        target_cache[target] = hit
    return hit
