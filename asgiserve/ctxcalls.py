"""The part of an api handler that serves apis taking BentoML's ``Context`` (``handlers.APIHandler`` mixes it in).

Whether an api takes one is decided once, when its handler is built; an api that does not never runs any
of this. A call the server makes directly is started by ``start_head``, which also gets the request target
and the peer, and its api's own coroutine is finished by ``_finish_ctx``; over ASGI, ``_serve_with_context``
does the same for whole answers, files and streams. What the api set on ``ctx.response`` goes on a
successful response; ``ctx.temp_dir`` is removed once the response is made. A batch runs with the context
of its first call, and what it sets goes on every call of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from msgspec.structs import astuple

from .codec import JSON_CT, PLAIN_JSON, encode_plain_json
from .context import Context, DirectContext
from .files import FileOut, send_file
from .responses import send_answer
from .types import Answer, Headers, Receive, RequestHead, Scope, Send, Started

if TYPE_CHECKING:
    import msgspec

    from .codec import APICodec
    from .traffic import Gate

    # A form read as it arrived (``handlers.Form``).
    Form = tuple[msgspec.Struct, Callable[[], None]]

__all__ = ["ContextCalls", "Response"]

# What ``respond`` produces: an ``Answer``, or one whose body is a file to stream.
Response = tuple[int, bytes, "bytes | FileOut", "Headers | None"]


class ContextCalls:
    """``APIHandler``'s methods for an api taking a ``Context``."""

    if TYPE_CHECKING:  # what APIHandler provides
        gate: Gate
        route: str
        own: bool
        json_out: bool
        streams: bool
        codec: APICodec
        bound: Callable[..., object]
        _ctx_last: bool

        def _own_decode(self, headers: Headers, body: bytes) -> msgspec.Struct | None: ...
        def answer(self, result: object) -> Answer: ...
        def failed(self, exc: Exception) -> Answer: ...
        def finish(
            self, task: object, t0: float, own: object, result: object, error: BaseException | None
        ) -> Answer | None: ...
        async def _call(self, *args: object, **kwargs: object) -> object: ...
        async def _respond_whole(
            self, headers: Headers, body: bytes, ctx: Context | None = None
        ) -> Answer: ...
        async def respond(
            self, headers: Headers, body: bytes, form: Form | None = None, ctx: Context | None = None
        ) -> Response: ...
        async def _stream(
            self,
            headers: Headers,
            body: bytes,
            receive: Receive,
            send: Send,
            form: Form | None = None,
            ctx: Context | None = None,
        ) -> int: ...

    wants_head = False  # True for an api taking a Context: the server starts it with ``start_head``

    def start_head(
        self, head: RequestHead, client: tuple[str, int] | None, body: bytes, task: object, t0: float
    ) -> Answer | Started:
        """``start`` for an api taking a ``Context`` (``wants_head``): the same, with the request's context."""
        headers = head.headers
        gate = self.gate
        refused = gate.admit(headers, self.route, task, t0)
        if refused is not None:
            return refused
        ctx = DirectContext()
        ctx._request = (self.route, headers, head.target, client)
        ctx._response = None
        ctx._temp_dir = None
        try:
            if len(body) > gate.max_body:
                raise gate.too_large()
            # As ``start``: None also when the Accept header asks for a binary answer (``respond`` does it).
            obj = self._own_decode(headers, body) if self.own else None
            if obj is None:
                return self._respond_whole(headers, body, ctx), False
            if self._ctx_last:  # codec.call_args() without its dict: the context goes last
                started = self.bound(*astuple(obj), ctx)
            else:
                started = self.bound(**self.codec.call_args(obj, ctx)[1])
            return started, ctx  # type: ignore[return-value]  # ``own``: given back to _finish_ctx
        except Exception as exc:
            ctx.close()
            answer = self.failed(exc)
            gate.leave(self.route, task, t0, answer[0])
            return answer

    def _finish_ctx(
        self, task: object, t0: float, own: object, result: object, error: BaseException | None
    ) -> Answer | None:
        """``finish`` for an api taking a ``Context``: its own call's answer gets what it set on the response
        (``own`` is the call's context, as ``start_head`` handed it out)."""
        ctx = own if isinstance(own, Context) else None
        if ctx is None or error is not None:
            if ctx is not None and ctx._temp_dir is not None:
                ctx.close()
            return type(self).finish(self, task, t0, own, result, error)  # the class's: this one stands in
        answer: Answer
        if self.json_out and type(result) in PLAIN_JSON:  # finish()'s first case, as it takes it
            try:
                answer = 200, JSON_CT, encode_plain_json(result), None
            except Exception:
                answer = self.answer(result)
        else:
            answer = self.answer(result)
        response = ctx._response
        if response is not None and answer[0] == 200:
            try:
                answer = response.on_answer(answer)
            except Exception as exc:  # a status or header the server cannot send
                answer = self.failed(exc)
        if ctx._temp_dir is not None:
            ctx.close()
        self.gate.leave(self.route, task, t0, answer[0])  # the status sent, the api's own included
        return answer

    async def _call_batch(self, batch: object, contexts: list[object]) -> object:
        """Run a batch of calls to an api taking a ``Context``: it gets the first call's, and what it sets
        on the response goes on every call's response."""
        first = cast(Context, contexts[0])
        for other in contexts[1:]:
            cast(Context, other).response = first.response
        return await self._call(batch, **{cast(str, self.codec.ctx_param): first})

    async def _serve_with_context(
        self, scope: Scope, body: bytes, form: Form | None, receive: Receive, send: Send
    ) -> int:
        """``_serve`` for an api taking a ``Context``, over ASGI (``form``: a form read already)."""
        ctx = Context(scope)
        try:
            if self.streams:
                return await self._stream(scope["headers"], body, receive, send, form, ctx)
            status, ctype, out, extra = await self.respond(scope["headers"], body, form, ctx)
            if status == 200:
                try:
                    status, ctype, extra = ctx.finish(status, ctype, extra)
                except (ValueError, TypeError) as exc:
                    if isinstance(out, FileOut):
                        out.fh.close()
                    return await send_answer(send, self.failed(exc))
            self.gate.response_started(asyncio.current_task())
            # Removed before the response goes out, as on the direct path: the body is at hand, and a file
            # output written there is open already (its name may go, its bytes stay until it is closed).
            ctx.close()
            if isinstance(out, FileOut):
                return await send_file(send, FileOut(out.fh, out.size, ctype, extra or []), status)
            return await send_answer(send, (status, ctype, out, extra))
        finally:
            ctx.close()
