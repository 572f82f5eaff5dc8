"""An api over ASGI (any server): read the body (or a form, as it arrives), then the shared decode, call
and encode (``handlers.APIHandler.respond``) under ``Gate.guard``; streams and file outputs go out piece
by piece from here. ``ASGICalls`` is mixed into ``handlers.APIHandler``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .errors import HTTPError
from .files import FileOut, send_file
from .responses import send_answer
from .streams import INTERNAL, Items, send_stream
from .traffic import Gate
from .types import Answer, Headers, Receive, Scope, Send

if TYPE_CHECKING:
    import msgspec

    from .codec import APICodec
    from .context import Context
    from .ctxcalls import Response
    from .service import APISpec

    # A form read as it arrived (``handlers.Form``).
    Form = tuple[msgspec.Struct, Callable[[], None]]

__all__ = ["ASGICalls", "ClientDisconnected", "body_chunks", "content_type_of", "read_body"]


class ClientDisconnected(Exception):
    """The client went away before the request body was complete."""


async def body_chunks(receive: Receive, gate: Gate) -> AsyncIterator[bytes]:
    """The request body piece by piece as it arrives, within the gate's body limit."""
    limit = gate.max_body
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise gate.too_large()
        if chunk:
            yield chunk
        if not msg.get("more_body"):
            return


async def read_body(receive: Receive, gate: Gate) -> bytes:
    """The whole request body (one ``receive`` call in the common case), within the gate's body limit."""
    limit = gate.max_body
    msg = await receive()
    if msg["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = msg.get("body", b"")
    if not msg.get("more_body"):
        if len(body) > limit:
            raise gate.too_large()
        return body
    parts = [body]
    size = len(body)
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise gate.too_large()
        parts.append(chunk)
        if not msg.get("more_body"):
            return b"".join(parts)


def content_type_of(headers: Headers) -> bytes | None:
    """The request's Content-Type, not lowercased (a multipart boundary is case-sensitive)."""
    for name, value in headers:
        if name == b"content-type":
            return (
                value if type(value) is bytes else bytes(value)
            )  # not lowercased: boundaries are case-sensitive
    return None


class ASGICalls:
    """``APIHandler``'s ASGI entry: ``await handler(scope, receive, send)``."""

    if TYPE_CHECKING:
        route: str
        gate: Gate
        codec: APICodec
        executor: ThreadPoolExecutor
        allow_private_urls: bool
        spec: APISpec
        ctx: bool
        streams: bool
        _ct: bytes

        def failed(self, exc: Exception) -> Answer: ...
        async def respond(
            self, headers: Headers, body: bytes, form: Form | None = None, ctx: Context | None = None
        ) -> Response: ...
        async def _serve_with_context(
            self, scope: Scope, body: bytes, form: Form | None, receive: Receive, send: Send
        ) -> int: ...
        async def _open_stream(
            self, headers: Headers, body: bytes, form: Form | None, ctx: Context | None = None
        ) -> tuple[object, Callable[[], None] | None]: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one POST to this api over ASGI, under the gate's rules."""
        await self.gate.guard(self.route, scope["headers"], send, self._serve, scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Read, decode, call, answer (admitted already); returns the status sent."""
        headers = scope["headers"]
        form = None
        body = b""
        try:
            ctype = content_type_of(headers) if self.codec.file_params else None
            if ctype is not None and ctype.lower().startswith(b"multipart/form-data"):
                from .multipart import receive_form

                form = await receive_form(
                    self.codec, body_chunks(receive, self.gate), ctype, self.allow_private_urls
                )
            else:
                body = await read_body(receive, self.gate)
        except ClientDisconnected:
            return 499
        except HTTPError as exc:  # over the body limit, or a malformed form
            return await send_answer(send, self.failed(exc))
        if self.ctx:
            return await self._serve_with_context(scope, body, form, receive, send)
        if self.streams:
            return await self._stream(headers, body, receive, send, form)
        status, ctype, out, extra = await self.respond(headers, body, form)
        self.gate.response_started(asyncio.current_task())
        if isinstance(out, FileOut):
            return await send_file(send, out)
        return await send_answer(send, (status, ctype, out, extra))

    async def _stream(
        self,
        headers: Headers,
        body: bytes,
        receive: Receive,
        send: Send,
        form: Form | None = None,
        ctx: Context | None = None,
    ) -> int:
        cleanup = None
        items: Items | None = None
        try:
            try:
                gen, cleanup = await self._open_stream(headers, body, form, ctx)
            except Exception as exc:
                return await send_answer(send, self.failed(exc))
            items = Items(gen, self.codec.stream == "async", self.executor, self.gate)
            sent = await send_stream(
                items,
                self._ct,
                self.codec.sse,
                self.gate,
                receive,
                send,
                self.spec.name,
                ctx.response if ctx is not None else None,
            )
            return sent if sent is not None else await send_answer(send, INTERNAL)
        finally:
            if items is not None:
                await items.close()
            if cleanup is not None:
                cleanup()
