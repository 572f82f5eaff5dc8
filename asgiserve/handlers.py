"""The api hot path: decode, call (loop or thread pool), encode, under the ``Gate``'s rules.

One core, two entries:
- direct (asgiserve's own server, ``types.DirectHandler``): ``start`` admits and decodes a call whose whole
  body is at hand and hands back the coroutine to run; ``finish`` turns its result or error into the answer
  and gives back the slot;
- ASGI (any server): ``__call__`` (``asgicalls.ASGICalls``) reads the body and runs the same decode, call
  and encode (``respond``) under ``Gate.guard``; streams and file outputs go out piece by piece there.

Rules kept here:
- a sync api runs in the service's thread pool; when the deadline answers 504 first, the slot stays taken
  until the thread really finishes (``Gate.hold_slot_until``);
- the deadline ends when the response starts (a slow reader must not turn it into a 504);
- streams send each item as it is produced; an error before the first item is an ordinary error
  response, a later one propagates so the server ends the response without its final chunk.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import msgspec
from msgspec.structs import asdict, astuple

from . import tensors as media_types
from .asgicalls import ASGICalls, ClientDisconnected, content_type_of, read_body
from .batching import Batcher
from .codec import BYTES_CT, JSON_CT, PLAIN_JSON, TEXT_CT, APICodec, encode_json, encode_plain_json
from .context import Context
from .ctxcalls import ContextCalls, Response
from .errors import HTTPError, UnsupportedMediaType
from .files import FileOut, open_file
from .responses import error_body
from .service import APISpec
from .streams import Writer
from .traffic import Gate
from .types import Answer, ChunkWriter, Headers, Started

__all__ = ["APIHandler", "ClientDisconnected", "Response", "read_body"]

# A form read as it arrived (``multipart.receive_form``): the api's input and the cleanup of its files.
Form = tuple[msgspec.Struct, Callable[[], None]]
_INTERNAL: Answer = (500, JSON_CT, error_body("Internal Server Error"), None)

logger = logging.getLogger("asgiserve")
_JSON_LIKE = (b"application/json", b"text/plain", b"application/x-www-form-urlencoded")
_JSON_TYPES: set[bytes] = set()  # content types seen and accepted as JSON, so most requests skip the checks


class APIHandler(ContextCalls, ASGICalls):
    """Serves one api, directly (``start`` / ``finish``) or over ASGI (``await handler(scope, receive, send)``)."""

    def __init__(
        self,
        attr: str,
        func: Callable[..., object],
        spec: APISpec,
        *,
        gate: Gate,
        executor: ThreadPoolExecutor,
        allow_private_urls: bool,
    ) -> None:
        self.attr = attr
        self.func = func
        self.spec = spec
        self.route = spec.route
        self.gate = gate
        self.executor = executor
        self.allow_private_urls = allow_private_urls
        self.codec = codec = APICodec(func, spec.name, spec.media_type, spec.input_spec, spec.output_spec)
        self._decoder = codec.decoder
        self._spread = codec.spread
        self.is_async = asyncio.iscoroutinefunction(func)
        self.bound: Callable[..., object] = func  # replaced by the instance's method at startup
        out = codec.output
        self._kind = out.kind
        self.json_out = out.kind == "json"  # a JSON output (of any value)
        self._ct = out.content_type
        self.streams = codec.stream != "none"
        # Answered in one piece: directly callable. An api taking files is not, so that a form's uploads
        # can be read as they arrive (``_serve``) rather than buffered whole by the server first.
        self.whole = not self.streams and out.kind != "file" and not codec.file_params
        # An api taking a ``Context``: decided here, once. Directly called, it is started by ``start_head``
        # (the Context needs the target and the peer too) and finished by ``_finish_ctx``.
        self.ctx = codec.ctx_param is not None
        self.wants_head = self.ctx
        self._ctx_last = codec.ctx_last
        if self.ctx:
            self.finish = self._finish_ctx  # type: ignore[method-assign]
        # What a server may call directly: whole answers, and streams that take no files (nor a Context,
        # whose response is settled by its ASGI path).
        self.direct = self.whole or (self.streams and not codec.file_params and not self.ctx)
        self.batcher: Batcher | None = None
        # True when ``start`` can hand out the api's own coroutine: its result only needs ``answer``.
        self.own = False
        if spec.batchable and (len(codec.param_names) != 1 or self.streams or codec.spec_input is not None):
            raise TypeError(
                f"batchable api {spec.name!r} must take exactly one parameter (the batch) and not stream"
            )
        if self.streams and self._kind == "text" and not codec.sse:
            self._ct = TEXT_CT
        self.writer = (
            Writer(self._ct, codec.sse, codec.stream == "async", gate, executor, self.failed, spec.name)
            if self.streams
            else None
        )

    def bind(self, instance: object) -> None:
        """Point the handler at the live service instance's method."""
        self.bound = getattr(instance, self.attr)
        self.own = (
            self.is_async
            and not self.spec.batchable
            and not self.streams
            and not self.codec.path_params
            and not self.codec.converters
            and self.codec.spec_input is None
            and self._kind in ("json", "text", "bytes")
        )
        if self.spec.batchable:
            self.batcher = Batcher(
                self._call_batch if self.ctx else self._call,
                endpoint=self.route,
                metrics=self.gate.metrics,
                max_batch_size=self.spec.max_batch_size,
                max_latency_ms=self.spec.max_latency_ms,
                batch_dim=self.spec.batch_dim,
                tagged=self.ctx,
            )

    async def _call(self, *args: object, **kwargs: object) -> object:
        if self.is_async:
            return await self.bound(*args, **kwargs)  # type: ignore[misc]
        return await self._in_thread(self.bound, *args, **kwargs)

    async def _in_thread(self, func: Callable[..., object], *args: object, **kwargs: object) -> object:
        """Run ``func`` in the service's thread pool; if the call is cancelled first, its slot stays taken."""
        cfut: Future[object] = self.executor.submit(func, *args, **kwargs)
        try:
            return await asyncio.wrap_future(cfut)
        except asyncio.CancelledError:
            if not cfut.done():
                self.gate.hold_slot_until(cfut)
            raise

    # -- direct calls (types.DirectHandler) -----------------------------------------------------------

    def start(self, headers: Headers, body: bytes, task: object, t0: float) -> Answer | Started:
        """Admit, decode and start a call whose whole body is at hand: the answer to send now, or the call
        to run (the api's own coroutine when it can run as it is, else ``respond``'s)."""
        gate = self.gate
        refused = gate.admit(headers, self.route, task, t0)
        if refused is not None:
            return refused
        try:
            if len(body) > gate.max_body:
                raise gate.too_large()
            obj = self._own_decode(headers, body) if self.own else None
            if obj is None:  # not an own call, or a form: respond() decodes it
                return self._respond_whole(headers, body), False
            if self._spread:  # codec.call_args() without its two containers: the hot path
                return self.bound(*astuple(obj)), True  # type: ignore[return-value]
            return self.bound(**asdict(obj)), True  # type: ignore[return-value]
        except Exception as exc:
            answer = self.failed(exc)
            gate.leave(self.route, task, t0, answer[0])
            return answer

    def start_stream(
        self, headers: Headers, body: bytes, task: object, t0: float, out: ChunkWriter
    ) -> Answer | Started:
        """Admit a call to a streaming api whose whole body is at hand: the answer to send now, or the call
        that writes its items to ``out`` (``streams.write_stream``)."""
        gate = self.gate
        refused = gate.admit(headers, self.route, task, t0)
        if refused is not None:
            return refused
        if len(body) > gate.max_body:
            answer = self.failed(gate.too_large())
            gate.leave(self.route, task, t0, answer[0])
            return answer
        assert self.writer is not None
        return self.writer.write(self._open_stream(headers, body, None), task, out), False

    def finish(
        self, task: object, t0: float, own: object, result: object, error: BaseException | None
    ) -> Answer | None:
        """The answer for a call ``start`` began; None when the server cancelled it (not its deadline)."""
        answer: Answer | None
        if error is None:
            if not own:
                answer = result  # type: ignore[assignment]
            elif self.json_out and type(result) in PLAIN_JSON:
                # answer()'s first case, here: one call less on the hot path.
                try:
                    answer = 200, JSON_CT, encode_plain_json(result), None
                except Exception:
                    answer = self.answer(result)
            else:
                answer = self.answer(result)
        elif isinstance(error, asyncio.CancelledError):
            answer = self.gate.timeout_answer if self.gate.expired(task) else None
        elif isinstance(error, Exception):
            answer = self.failed(error)
        else:
            answer = _INTERNAL
        self.gate.leave(self.route, task, t0, 500 if answer is None else answer[0])
        return answer

    # -- the shared core -------------------------------------------------------------------------------

    def decode(self, headers: Headers, body: bytes) -> msgspec.Struct | None:
        """The decoded JSON body, or None for a multipart body; 415 for any other content type."""
        ctype = None
        for name, value in headers:
            if name == b"content-type":
                ctype = value
                break
        if ctype is not None and ctype not in _JSON_TYPES:
            low = ctype.lower()
            if not (low.startswith(_JSON_LIKE) or low.endswith(b"+json")):
                if low.startswith(b"multipart/form-data"):
                    return None
                binary = self.codec.decode_binary(low, body)
                if binary is not None:
                    return binary
                raise UnsupportedMediaType(
                    f"Unsupported content type {ctype.decode('latin-1')!r}: send application/json"
                    + " or application/msgpack"
                    + (" or multipart/form-data" if self.codec.file_params else "")
                )
            if len(_JSON_TYPES) < 64:
                _JSON_TYPES.add(ctype)
        if body:
            try:
                decoded: msgspec.Struct = self._decoder.decode(body)
                return decoded
            except msgspec.MsgspecError:
                pass  # codec.decode() words the error
        return self.codec.decode(body)

    def _own_decode(self, headers: Headers, body: bytes) -> msgspec.Struct | None:
        """``decode`` for ``start``; None also when the Accept header asks for a binary answer, which
        ``respond`` negotiates (one pass over the headers: JSON requests pay nothing more)."""
        ctype = None
        for name, value in headers:
            if name == b"content-type":
                ctype = value
            elif name == b"accept" and (b"msgpack" in value.lower() or b"npy" in value.lower()):
                return None
        if body and (ctype is None or ctype in _JSON_TYPES):
            try:
                decoded: msgspec.Struct = self._decoder.decode(body)
                return decoded
            except msgspec.MsgspecError:
                pass  # codec.decode() words the error
        return self.decode(headers, body)

    def answer(self, result: object) -> Answer:
        """The 200 answer for an api's result; a result that cannot be encoded is a 500 (and logged)."""
        if self.json_out and type(result) in PLAIN_JSON:
            try:
                return 200, JSON_CT, encode_plain_json(result), None
            except Exception:
                pass  # encode_json() tries harder, and words the failure
        try:
            out, ctype = self._encode(result)
        except Exception:
            logger.exception("api %s returned a result that cannot be encoded", self.spec.name)
            return _INTERNAL
        return 200, ctype, out, None

    def answer_negotiated(self, result: object, accept: bytes) -> Answer:
        """``answer``, in the binary media type the ``Accept`` header prefers when the output can take one."""
        array = media_types.is_array(result)
        # A numpy output is a "custom" one (its JSON form is the nested lists): binary forms fit it too.
        kinds_ok = self._kind in ("json", "dynamic") or (self._kind == "custom" and array)
        if not kinds_ok or isinstance(result, (str, bytes, bytearray, memoryview)):
            return self.answer(result)
        media = media_types.negotiate(accept, array)
        if media is None:
            return self.answer(result)
        try:
            return 200, media, media_types.encode_as(media, result), None
        except Exception:
            logger.exception("api %s returned a result that cannot be encoded", self.spec.name)
            return _INTERNAL

    def failed(self, exc: Exception) -> Answer:
        """The answer for a call that raised ``exc``: its own status for an ``HTTPError``, else a logged 500."""
        if isinstance(exc, HTTPError):
            return exc.status, JSON_CT, error_body(exc.message, exc.detail), None
        logger.error("api %s raised", self.spec.name, exc_info=exc)
        return _INTERNAL

    async def _respond_whole(self, headers: Headers, body: bytes, ctx: Context | None = None) -> Answer:
        try:
            status, ctype, out, extra = await self.respond(headers, body, None, ctx)
            if isinstance(out, FileOut):
                out = await out.read_all()
            if ctx is not None and status == 200:
                try:
                    status, ctype, extra = ctx.finish(status, ctype, extra)
                except (ValueError, TypeError) as exc:  # a status or cookie the server cannot send
                    return self.failed(exc)
            return status, ctype, out, extra
        finally:
            if ctx is not None:
                ctx.close()

    async def respond(
        self, headers: Headers, body: bytes, form: Form | None = None, ctx: Context | None = None
    ) -> Response:
        """Decode, call and encode one request (or call with a ``form`` read already); errors become JSON
        error answers.

        Cancellation (the deadline, or the server going away) propagates to the caller.
        """
        cleanup: Callable[[], None] | None = None
        try:
            obj, cleanup = await self._input(headers, body, form)
            args, kwargs = self.codec.call_args(obj, ctx)
            if self.batcher is not None:
                batch = args[0] if args else kwargs[self.codec.param_names[0]]
                result = await self.batcher.submit(batch, ctx)
            else:
                result = await self._call(*args, **kwargs)
            if isinstance(result, pathlib.PurePath) and self._kind in ("file", "dynamic"):
                # Opened here so that a missing file is an ordinary 500; the caller streams it.
                declared = self._ct if self._kind == "file" and self._ct != BYTES_CT else None
                fo = await open_file(pathlib.Path(result), declared)
                return 200, fo.ctype, fo, fo.extra
            accept = media_types.binary_accept(headers)
            return self.answer(result) if accept is None else self.answer_negotiated(result, accept)
        except Exception as exc:
            return self.failed(exc)
        finally:
            if cleanup is not None:
                cleanup()

    async def _input(
        self, headers: Headers, body: bytes, form: Form | None
    ) -> tuple[msgspec.Struct, Callable[[], None] | None]:
        """The api's decoded input (from a ``form`` read already, else the body), and the cleanup of its
        files, if any."""
        if form is not None:
            return form
        decoded = self.decode(headers, body)
        if decoded is None or self.codec.path_params:
            return await self._decode_files(decoded, headers, body)
        return decoded, None

    async def _decode_files(
        self, obj: msgspec.Struct | None, headers: Headers, body: bytes
    ) -> tuple[msgspec.Struct, Callable[[], None] | None]:
        """Finish what ``decode`` left: parse a multipart body, or download URLs given for files."""
        if obj is None:
            from .multipart import decode_form

            return await decode_form(
                self.codec, body, content_type_of(headers) or b"", self.allow_private_urls
            )
        from .downloads import fetch_into_temp

        return await fetch_into_temp(self.codec, obj, self.allow_private_urls)

    def _encode(self, result: object) -> tuple[bytes, bytes]:
        kind = self._kind
        if kind == "text" and type(result) is str:
            return result.encode(), self._ct
        if kind == "json":
            return encode_json(result), JSON_CT
        if kind == "bytes" and isinstance(result, (bytes, bytearray, memoryview)):
            return bytes(result), self._ct
        plan = self.codec.output.plan
        if plan is not None:  # pydantic models, images, DataFrames, tensors
            out, ctype = plan.encode(result)
            return out, self._ct if self._ct != plan.content_type else ctype
        if isinstance(result, str):
            return result.encode(), TEXT_CT
        if isinstance(result, (bytes, bytearray, memoryview)):
            return bytes(result), BYTES_CT
        return encode_json(result), JSON_CT

    async def _open_stream(
        self, headers: Headers, body: bytes, form: Form | None, ctx: Context | None = None
    ) -> tuple[object, Callable[[], None] | None]:
        """Decode and call a streaming api: its iterator, and the cleanup of its input files."""
        obj, cleanup = await self._input(headers, body, form)
        try:
            args, kwargs = self.codec.call_args(obj, ctx)
            if not self.codec.iterator_factory:
                return self.bound(*args, **kwargs), cleanup
            made = await self._call(*args, **kwargs)
            if self.codec.stream == "async":
                return made.__aiter__(), cleanup  # type: ignore[attr-defined]
            return iter(made), cleanup  # type: ignore[call-overload]
        except BaseException:
            if cleanup is not None:
                cleanup()
            raise
