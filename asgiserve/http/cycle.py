"""The request/response cycle shared by the httptools and h11 protocols: ASGI ``receive`` and ``send``.

Hot path rules: one task per ASGI request (the app's; api calls skip ASGI, see ``HTTPProtocol.start_call``);
the response head is built when the first body message
arrives so that head and body go out in one ``transport.write``; for a response without Content-Length a
``call_soon`` flushes the head alone if the body is not sent in the same loop step (else the head gets an
exact Content-Length instead of chunked framing). App misbehaviour is settled here: an exception or a
missing response before anything was written is a 500, after that the connection is cut (no final chunk).
"""

from __future__ import annotations

import asyncio
import logging

from ..types import Headers, Message, Scope
from .exchange import Exchange
from .flow_control import HIGH_WATER
from .port import Port
from .wire import CONTINUE, LAST_CHUNK, ResponseHead, encode_chunk, error_response, response_head

__all__ = ["RequestCycle"]

logger = logging.getLogger("asgiserve")


class RequestCycle(Exchange):
    """One ASGI request: the ``receive`` and ``send`` for it, and the state of its response."""

    __slots__ = (
        "continue_sent",
        "expect_100",
        "final_sent",
        "head",
        "is_head",
        "proto",
        "response_headers",
        "scope",
        "started",
    )

    def __init__(
        self, proto: Port, scope: Scope, keep_alive: bool, expect_100: bool, is_head: bool, http10: bool
    ) -> None:
        super().__init__(keep_alive, http10)
        self.proto = proto
        self.scope = scope
        self.expect_100 = expect_100
        self.is_head = is_head
        self.final_sent = False
        self.continue_sent = False
        self.started = False
        self.head: ResponseHead | None = None
        self.response_headers: Headers = []

    def describe(self) -> tuple[str, str, bytes, str]:
        """``(method, path, query, HTTP version)``, for the access log."""
        scope = self.scope
        return scope["method"], scope["path"], scope["query_string"], scope["http_version"]

    async def run(self) -> None:
        """Run the app for this request and deal with whatever it left undone."""
        self.proto.flush()  # responses before this one, held for the end of the loop pass
        try:
            await self.proto.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self._app_failed(exc)
        else:
            if not self.finished and not self.disconnected:
                if not self.started:
                    logger.error("ASGI app returned without starting a response")
                else:
                    logger.error("ASGI app returned without completing the response")
                self._abort()

    def _app_failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            if not self.finished:
                self.proto.transport.close()
            return
        logger.error("Exception in ASGI application", exc_info=exc)
        if not self.finished and not self.disconnected:
            self._abort()

    def _abort(self) -> None:
        """Answer 500 when nothing was written yet, else cut the connection (no final chunk)."""
        self.finished = True
        transport = self.proto.transport
        if self.head is None:
            self.status = 500
            transport.write(error_response(500, "Internal Server Error", self.proto.server.defaults))
        transport.close()

    async def receive(self) -> Message:
        """ASGI receive: body pieces, then ``http.disconnect`` once the peer leaves or the response is done."""
        while True:
            if self.disconnected:
                return {"type": "http.disconnect"}
            chunks = self.chunks
            if chunks or (self.body_done and not self.final_sent):
                if len(chunks) == 1:
                    body = chunks[0]
                    chunks.clear()
                elif chunks:
                    body = b"".join(chunks)
                    chunks.clear()
                else:
                    body = b""
                more = not self.body_done
                if not more:
                    self.final_sent = True
                if self.buffered > HIGH_WATER:
                    self.proto.body_taken(self)
                self.buffered = 0
                return {"type": "http.request", "body": body, "more_body": more}
            if self.final_sent and self.finished:
                return {"type": "http.disconnect"}
            if self.expect_100 and not self.continue_sent and self.head is None and not self.body_done:
                # RFC 9110 10.1.1: the client waits for this before sending the body.
                self.continue_sent = True
                self.proto.transport.write(CONTINUE)
            waiter = self.waiter = self.proto.loop.create_future()
            await waiter

    async def send(self, message: Message) -> None:
        """ASGI send: the head is held until the first body message so both leave in one write."""
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start', got {kind!r}")
            self.started = True
            self.status = message["status"]
            headers = self.response_headers = message.get("headers") or []
            # A response with a Content-Length is about to send its body: hold the head for it. Any other
            # (a stream, perhaps slow to start) gets its head flushed at the end of this loop step.
            for name, _ in headers:
                if name == b"content-length":
                    return
            self.proto.loop.call_soon(self._flush_head)
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r} during an HTTP response")
        if self.finished:
            raise RuntimeError("response already completed")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        proto = self.proto
        head = self.head
        if head is None:
            head = self.head = self._build_head(-1 if more else len(body))
            if not more and not head.chunked and (head.length == len(body) or head.no_body):
                # The common case: a whole response in one message, one write (coalesced, see emit).
                proto.emit(head.data if head.no_body else head.data + body)
                self.finished = True
                self.sent = len(body)
                if self.waiter is not None:
                    self.wake()
                proto.response_complete(self, head.keep_alive)
                return
            prefix = head.data
        else:
            prefix = None
        if head.no_body:
            data = b""
        elif head.chunked:
            data = encode_chunk(body) if body else b""
            if not more:
                data += LAST_CHUNK
        else:
            data = body
            self.sent += len(body)
            if head.length >= 0 and self.sent > head.length:
                logger.error("ASGI app sent more than its Content-Length of %d bytes", head.length)
                self.finished = True
                if prefix is not None:
                    proto.transport.write(prefix)
                proto.transport.close()
                return
        transport = proto.transport
        if prefix is not None:
            if len(data) < 65536:
                transport.write(prefix + data if data else prefix)
            else:
                transport.writelines((prefix, data))
        elif data:
            transport.write(data)
        if not more:
            self.finished = True
            if self.waiter is not None:
                self.wake()
            if head.length >= 0 and not head.no_body and self.sent != head.length:
                logger.error("ASGI app sent %d bytes for a Content-Length of %d", self.sent, head.length)
                transport.close()
                return
            proto.response_complete(self, head.keep_alive)
        elif proto.flow.write_paused:
            await proto.flow.drain()

    def _build_head(self, body_len: int) -> ResponseHead:
        proto = self.proto
        keep_alive = self.keep_alive and not proto.server.draining
        if self.expect_100 and not self.continue_sent and not self.body_done:
            keep_alive = False  # the client may never send the body it announced
        return response_head(
            self.status,
            self.response_headers,
            proto.server.defaults,
            keep_alive,
            self.http10,
            self.is_head,
            body_len,
        )

    def _flush_head(self) -> None:
        if self.head is not None or self.finished or self.disconnected:
            return
        try:
            self.head = self._build_head(-1)
        except ValueError as exc:
            logger.error("Invalid response from ASGI app: %s", exc)
            self._abort()
            return
        self.proto.transport.write(self.head.data)
