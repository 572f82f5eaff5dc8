"""WebSocket connections on asgiserve's own server: the handshake, ASGI ``websocket`` messages, frames.

A ``GET`` that asks to upgrade to ``websocket`` (RFC 6455) leaves HTTP behind: the connection hands its
bytes to a ``WebSocketSession``, which runs the app with a ``websocket`` scope. The handshake answer is
written here (101 on ``websocket.accept``, 403 on a close before it, 500 if the app ends without either);
framing, masking, fragmentation, UTF-8 checks and close codes are wsproto's (imported only when a
websocket arrives, so HTTP-only servers never load it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from ..types import Headers, Message, Scope
from .port import Port
from .scopes import websocket_scope
from .wire import error_response

__all__ = ["WebSocketSession", "handshake_error", "open_session", "wants_websocket"]

logger = logging.getLogger("asgiserve")

_GOING_AWAY = 1001
_INTERNAL_ERROR = 1011
_ABNORMAL = 1006  # reported to the app when the peer vanished without a close frame; never sent
_QUEUE_HIGH = 64  # messages waiting for the app before the connection stops reading
_QUEUE_LOW = 16
_MAX_MESSAGE = 16 * 1024 * 1024  # as uvicorn's default: a bigger message closes the socket with 1009
_MAX_PENDING = 1024 * 1024  # bytes a client may send before the app has accepted


def wants_websocket(headers: list[tuple[bytes, bytes]]) -> bool:
    """True when an upgrade request asks for ``websocket`` (the rest is checked by ``handshake_error``)."""
    for name, value in headers:
        if name == b"upgrade":
            return b"websocket" in [t.strip() for t in value.lower().split(b",")]
    return False


def handshake_error(fields: dict[bytes, bytes]) -> tuple[int, str] | None:
    """The status and reason for a malformed opening handshake (RFC 6455 4.2.1), or None when valid.

    ``fields`` are the request's headers by (lowercase) name.
    """
    version = fields.get(b"sec-websocket-version")
    if version is None or version.strip() != b"13":
        return 426, "Only WebSocket version 13 is supported"
    key = fields.get(b"sec-websocket-key", b"").strip()
    if len(key) != 24 or not key.endswith(b"=="):  # base64 of 16 bytes
        return 400, "Missing or malformed Sec-WebSocket-Key"
    return None


def open_session(
    port: Port, version: str, path: str, raw_path: bytes, query: bytes, headers: Headers
) -> WebSocketSession | None:
    """Answer an opening handshake: a running session, or None when it was malformed (refused and closed).

    A malformed handshake is answered 400 (426 for another protocol version); a valid one runs the app
    with a ``websocket`` scope, which accepts or refuses it.
    """
    server = port.server
    fields = dict(headers)
    problem = handshake_error(fields) if version == "1.1" else (400, "WebSocket needs HTTP/1.1")
    if problem is not None:
        status, message = problem
        extra = b"sec-websocket-version: 13\r\n" if status == 426 else b""
        port.write(error_response(status, message, server.defaults + extra))
        port.close()
        return None
    offered = fields.get(b"sec-websocket-protocol", b"").decode("latin-1")
    scope = websocket_scope(
        server, version, path, raw_path, query, headers, port.sockname, port.client, offered
    )
    session = WebSocketSession(port, scope, fields[b"sec-websocket-key"].strip())
    session.start()
    return session


class WebSocketSession:
    """One accepted (or being accepted) WebSocket connection: the ASGI ``receive`` and ``send`` for it."""

    def __init__(self, proto: Port, scope: Scope, key: bytes) -> None:
        from wsproto.connection import Connection, ConnectionType

        self.proto = proto
        self.scope = scope
        self.key = key
        self.conn = Connection(ConnectionType.SERVER)
        self.accepted = False
        self.closed = False  # a close was sent, or the connection is gone: nothing more goes out
        self.gone = False  # the peer left or closed: the app gets websocket.disconnect
        self.pending = b""  # frames that came before the app accepted
        self.queue: deque[Message] = deque([{"type": "websocket.connect"}])
        self.waiter: asyncio.Future[None] | None = None
        self.parts: list[Any] = []  # a fragmented message, so far
        self.size = 0  # its length so far
        self.paused = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the app for this websocket."""
        proto = self.proto
        self.task = proto.context.run(proto.loop.create_task, self.run())

    async def run(self) -> None:
        """Run the app, then settle what it left: no answer is a 500, an open socket is closed."""
        error = False
        try:
            await self.proto.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            error = True
        except Exception:
            logger.exception("Exception in ASGI application (websocket)")
            error = True
        if not self.accepted and not self.closed:
            if not error:
                logger.error("ASGI app returned without accepting or closing the websocket")
            self.closed = True
            self.proto.write(error_response(500, "Internal Server Error", self.proto.server.defaults))
            self.proto.close()
        elif not self.closed:
            self._close(_INTERNAL_ERROR if error else 1000, "")

    # -- bytes from the peer -------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the peer (after the handshake request)."""
        if not self.accepted:
            if not self.closed:
                self.pending += data  # read once the app accepts
                if len(self.pending) > _MAX_PENDING:
                    self.closed = True
                    self._disconnect(_ABNORMAL)
                    self.proto.close()
            return
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        from wsproto.connection import ConnectionState
        from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

        if self.conn.state is ConnectionState.CLOSED:
            return  # both closes are done: anything more is not read
        self.conn.receive_data(data)
        for event in self.conn.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self.parts.append(event.data)
                self.size += len(event.data)
                if self.size > _MAX_MESSAGE:
                    self._close(1009, "Message too big")
                    self._disconnect(1009)
                    return
                if event.message_finished:
                    text = isinstance(event, TextMessage)
                    joined = ("" if text else b"").join(self.parts)
                    self.parts = []
                    self.size = 0
                    self._put({"type": "websocket.receive", "text" if text else "bytes": joined})
            elif isinstance(event, Ping):
                if not self.closed:
                    self._write(self.conn.send(event.response()))
            elif isinstance(event, CloseConnection):
                if not self.closed:
                    self._write(self.conn.send(event.response()))
                    self.closed = True
                self._disconnect(event.code)
                self.proto.close()
                return

    def _put(self, message: Message) -> None:
        self.queue.append(message)
        if len(self.queue) > _QUEUE_HIGH and not self.paused:
            self.paused = True  # the app reads slower than the peer sends
            self.proto.flow.pause_reading()
        self._wake()

    def _disconnect(self, code: int) -> None:
        if not self.gone:
            self.gone = True
            self.queue.append({"type": "websocket.disconnect", "code": code})
            self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def lost(self) -> None:
        """The connection is gone."""
        self.closed = True
        self._disconnect(_ABNORMAL)

    def going_away(self) -> None:
        """The server is draining: close with 1001 (the app sees the disconnect)."""
        if self.accepted and not self.closed:
            self._close(_GOING_AWAY, "Server shutting down")
            self._disconnect(_GOING_AWAY)
        elif not self.accepted:
            self.closed = True
            self._disconnect(_GOING_AWAY)
            self.proto.close()

    # -- ASGI ----------------------------------------------------------------------------------------

    async def receive(self) -> Message:
        """ASGI receive: ``websocket.connect``, then messages, then ``websocket.disconnect`` (repeated)."""
        while not self.queue:
            if self.gone:
                return {"type": "websocket.disconnect", "code": _ABNORMAL}
            self.waiter = self.proto.loop.create_future()
            await self.waiter
        message = self.queue.popleft()
        if self.paused and len(self.queue) < _QUEUE_LOW:
            self.paused = False
            self.proto.flow.resume_reading()
        if message["type"] == "websocket.disconnect":
            self.queue.appendleft(message)  # every later receive sees it too
        return message

    async def send(self, message: Message) -> None:
        """ASGI send: ``websocket.accept``, ``websocket.send``, ``websocket.close``."""
        from wsproto.events import BytesMessage, TextMessage

        kind = message["type"]
        if self.closed:
            if self.gone:
                raise OSError("websocket closed")  # as uvicorn does, so an app's send loop ends
            return
        if not self.accepted:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                # Before the handshake is accepted, a close is a refusal of it (ASGI spec).
                self.closed = True
                self.proto.write(
                    error_response(403, "WebSocket connection refused", self.proto.server.defaults)
                )
                self.proto.close()
            else:
                raise RuntimeError(f"expected 'websocket.accept' or 'websocket.close', got {kind!r}")
            return
        if kind == "websocket.send":
            text, data = message.get("text"), message.get("bytes")
            if text is not None:
                self._write(self.conn.send(TextMessage(data=text)))
            elif data is not None:
                self._write(self.conn.send(BytesMessage(data=data)))
            else:
                raise RuntimeError("websocket.send needs 'text' or 'bytes'")
            flow = self.proto.flow
            if flow.write_paused:
                await flow.drain()
        elif kind == "websocket.close":
            self._close(message.get("code") or 1000, message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an accepted websocket")

    def _accept(self, message: Message) -> None:
        from wsproto.utilities import generate_accept_token

        lines = [
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
            b"sec-websocket-accept: %s\r\n" % generate_accept_token(self.key),
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            lines.append(b"sec-websocket-protocol: %s\r\n" % subprotocol.encode("latin-1"))
        for name, value in message.get("headers") or ():
            lines.append(b"%s: %s\r\n" % (bytes(name), bytes(value)))
        lines.append(self.proto.server.head_end)
        self.proto.write(b"".join(lines))
        self.accepted = True
        pending, self.pending = self.pending, b""
        if pending:
            self._receive(pending)

    def _close(self, code: int, reason: str) -> None:
        from wsproto.events import CloseConnection

        self.closed = True
        self._write(self.conn.send(CloseConnection(code=code, reason=reason)))
        self.proto.close()

    def _write(self, data: bytes) -> None:
        if data:
            self.proto.transport.write(data)
