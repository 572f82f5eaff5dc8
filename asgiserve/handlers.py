"""The api hot path: read body, decode, call (loop or thread pool) under the traffic timeout, encode, send.

Rules kept here:
- the timeout covers everything before the response starts; the app's ``Deadlines`` sweep cancels the
  request's own task (``asyncio.wait_for`` would cost a task and a timer per request) and the app turns
  that cancellation into a 504;
- a sync api runs in the service's thread pool; when the timeout answers 504 first, the concurrency slot
  stays held until the thread really finishes (``ServiceApp.hold_slot_until``);
- streams send each item as it is produced; an error before the first item is an ordinary error
  response, a later one propagates so the server ends the response without its final chunk.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import pathlib
import urllib.parse
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
from msgspec.structs import asdict, astuple

from .batching import Batcher
from .codec import BYTES_CT, JSON_CT, TEXT_CT, APICodec, encode_json
from .errors import HTTPError, PayloadTooLarge, UnsupportedMediaType
from .responses import error_body
from .service import APISpec

if TYPE_CHECKING:
    from .app import ServiceApp

__all__ = ["APIHandler", "ClientDisconnected", "FileOut", "Response", "read_body"]


class FileOut(NamedTuple):
    """A file output, opened and ready to stream from disk."""

    fh: Any
    size: int
    ctype: bytes
    extra: list[tuple[bytes, bytes]]

    async def read_all(self) -> bytes:
        """The whole file (for callers that need the body in one piece), closing it."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self.fh.read)
        finally:
            self.fh.close()


# (status, content type, body, extra headers or None): what ``APIHandler.respond`` produces.
Response = tuple[int, bytes, "bytes | FileOut", "list[tuple[bytes, bytes]] | None"]
_INTERNAL_ERROR = error_body("Internal Server Error")
_FORM = object()  # marks a multipart body, decoded on the async path

logger = logging.getLogger("asgiserve")
_STOP = object()
_FILE_CHUNK = 256 * 1024
_JSON_LIKE = (b"application/json", b"text/plain", b"application/x-www-form-urlencoded")
_JSON_TYPES: set[bytes] = set()  # content types seen and accepted as JSON, so most requests skip the checks


class ClientDisconnected(Exception):
    """The client went away before the request body was complete."""


async def read_body(receive: Callable[[], Any], limit: int) -> bytes:
    """The whole request body (one ``receive`` call in the common case), at most ``limit`` bytes."""
    msg = await receive()
    if msg["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = msg.get("body", b"")
    if not msg.get("more_body"):
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body over the {limit} byte limit")
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
            raise PayloadTooLarge(f"Request body over the {limit} byte limit")
        parts.append(chunk)
        if not msg.get("more_body"):
            return b"".join(parts)


def _disposition(name: str) -> bytes:
    """A Content-Disposition header value: an ASCII fallback plus the RFC 8187 UTF-8 form when needed."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "").replace("\\", "")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{urllib.parse.quote(name)}"
    return value.encode("latin-1")


def _content_type(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"content-type":
            return bytes(value)  # not lowercased: a multipart boundary is case-sensitive
    return None


class APIHandler:
    """Serves one api: ``await handler(scope, receive, send)`` returns the response status."""

    def __init__(self, app: ServiceApp, attr: str, func: Callable[..., Any], spec: APISpec) -> None:
        self.app = app
        self.attr = attr
        self.func = func
        self.spec = spec
        self.route = spec.route
        self.codec = APICodec(func, spec.name, spec.media_type)
        self._positional = self.codec.positional and not self.codec.var_kw
        self._decoder = self.codec.decoder
        self.is_async = asyncio.iscoroutinefunction(func)
        self.bound: Callable[..., Any] = func  # replaced by the instance's method at startup
        out = self.codec.output
        self._kind = out.kind
        self.json_out = out.kind == "json"  # a JSON output (of any value)
        self._ct = out.content_type
        self.streams = self.codec.stream != "none"
        self.batcher: Batcher | None = None
        # True when ``begin`` can hand out the api's own coroutine: its result only needs ``finish``.
        self.direct = False
        if spec.batchable and (len(self.codec.param_names) != 1 or self.streams):
            raise TypeError(
                f"batchable api {spec.name!r} must take exactly one parameter (the batch) and not stream"
            )
        if self.streams and self._kind == "text" and not self.codec.sse:
            self._ct = TEXT_CT

    def bind(self, instance: Any) -> None:
        """Point the handler at the live service instance's method."""
        self.bound = getattr(instance, self.attr)
        self.direct = (
            self.is_async
            and not self.spec.batchable
            and not self.streams
            and not self.codec.path_params
            and self._kind in ("json", "text", "bytes")
        )
        if self.spec.batchable:
            self.batcher = Batcher(
                self._call,
                endpoint=self.route,
                metrics=self.app.metrics,
                max_batch_size=self.spec.max_batch_size,
                max_latency_ms=self.spec.max_latency_ms,
                batch_dim=self.spec.batch_dim,
            )

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return await self.bound(*args, **kwargs)
        cfut: Future[Any] = self.app.executor.submit(self.bound, *args, **kwargs)
        try:
            return await asyncio.wrap_future(cfut)
        except asyncio.CancelledError:
            if not cfut.done():
                self.app.hold_slot_until(cfut)
            raise

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[..., Any]
    ) -> int:
        """Handle one POST to this api over ASGI and return the status sent."""
        try:
            body = await read_body(receive, self.app.max_body_size)
        except ClientDisconnected:
            return 499
        except PayloadTooLarge as exc:
            return await self.app.answer_error(send, 413, exc.message)
        if self.streams:
            return await self._stream(scope["headers"], body, receive, send)
        status, ctype, out, extra = await self.respond(scope["headers"], body)
        # The response starts now, so its deadline ends (a slow reader must not turn it into a 504).
        self.app.deadlines.pending.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
        if isinstance(out, FileOut):
            return await self._send_file(send, out)
        headers = [(b"content-type", ctype), (b"content-length", b"%d" % len(out))]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})
        return status

    def _decode_json(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Any:
        """The decoded JSON body, or ``_FORM`` for a multipart body; 415 for any other content type."""
        ctype = None
        for name, value in headers:  # _content_type(), inline
            if name == b"content-type":
                ctype = value if type(value) is bytes else bytes(value)
                break
        if ctype is not None and ctype not in _JSON_TYPES:
            low = ctype.lower()
            if not (low.startswith(_JSON_LIKE) or low.endswith(b"+json")):
                if low.startswith(b"multipart/form-data"):
                    return _FORM
                raise UnsupportedMediaType(
                    f"Unsupported content type {ctype.decode('latin-1')!r}: send application/json"
                    + (" or multipart/form-data" if self.codec.file_params else "")
                )
            if len(_JSON_TYPES) < 64:
                _JSON_TYPES.add(ctype)
        if body:
            try:
                return self._decoder.decode(body)
            except msgspec.MsgspecError:
                pass  # codec.decode() words the error
        return self.codec.decode(body)

    async def _decode_files(
        self, obj: Any, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[Any, Callable[[], None] | None]:
        """Finish what ``_decode_json`` left: parse a multipart body, or download URLs given for files."""
        if obj is _FORM:
            return await self.decode_form(body, _content_type(headers) or b"")
        return await self.fetch_urls(obj)

    def begin(self, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[Coroutine[Any, Any, Any], bool]:
        """Start one call with the whole body at hand: ``(coroutine, direct)``.

        A direct coroutine is the api's own and returns its result, for ``finish``; any other returns a
        whole ``Response`` (with a file output read in). Bad input raises ``HTTPError`` before any call.
        """
        if self.direct:
            ctype = None
            for name, value in headers:
                if name == b"content-type":
                    ctype = value
                    break
            if body and (ctype is None or (type(ctype) is bytes and ctype in _JSON_TYPES)):
                # _decode_json(), inline, for the content types it has accepted before
                try:
                    obj = self._decoder.decode(body)
                except msgspec.MsgspecError:
                    obj = self._decode_json(headers, body)  # which words the error
            else:
                obj = self._decode_json(headers, body)
            if obj is not _FORM:
                if self._positional:  # codec.call_args(), inline
                    return self.bound(*astuple(obj)), True
                return self.bound(**asdict(obj)), True
        return self._respond_whole(headers, body), False

    def finish(self, result: Any) -> Response:
        """The response for a direct call's result (see ``begin``)."""
        try:
            if self._kind == "json":
                return 200, JSON_CT, encode_json(result), None
            out, ctype, extra = self._encode(result)
        except Exception:
            logger.exception("api %s returned a result that cannot be encoded", self.spec.name)
            return 500, JSON_CT, _INTERNAL_ERROR, None
        return 200, ctype, out, extra

    def failed(self, exc: Exception) -> Response:
        """The response for a direct call that raised ``exc``."""
        if isinstance(exc, HTTPError):
            return exc.status, JSON_CT, error_body(exc.message, exc.detail), None
        logger.error("api %s raised", self.spec.name, exc_info=exc)
        return 500, JSON_CT, _INTERNAL_ERROR, None

    async def _respond_whole(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
        response = await self.respond(headers, body)
        if isinstance(response[2], FileOut):
            response = (response[0], response[1], await response[2].read_all(), response[3])
        return response

    async def respond(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
        """Decode, call and encode one request; errors become JSON error responses.

        Cancellation (the deadline, or the server going away) propagates to the caller.
        """
        cleanup: Callable[[], None] | None = None
        try:
            obj = self._decode_json(headers, body)
            if obj is _FORM or self.codec.path_params:
                obj, cleanup = await self._decode_files(obj, headers, body)
            args, kwargs = self.codec.call_args(obj)
            if self.batcher is not None:
                result = await self.batcher.submit(args[0] if args else next(iter(kwargs.values())))
            elif self.is_async:
                result = await self.bound(*args, **kwargs)
            else:
                result = await self._call(*args, **kwargs)
            if isinstance(result, pathlib.PurePath) and self._kind in ("file", "dynamic"):
                # Opened here so that a missing file is an ordinary 500; the caller streams it.
                fo = await self._open_file(pathlib.Path(result))
                return 200, fo.ctype, fo, fo.extra
            out, ctype, extra = self._encode(result)
            return 200, ctype, out, extra
        except HTTPError as exc:
            return exc.status, JSON_CT, error_body(exc.message, exc.detail), None
        except Exception:
            logger.exception("api %s raised", self.spec.name)
            return 500, JSON_CT, _INTERNAL_ERROR, None
        finally:
            if cleanup is not None:
                cleanup()

    async def decode_form(self, body: bytes, ctype: bytes) -> tuple[Any, Callable[[], None] | None]:
        """Decode a ``multipart/form-data`` body into the api's input (see ``asgiserve.multipart``)."""
        from .multipart import decode_form

        return await decode_form(self, body, ctype)

    async def fetch_urls(self, obj: Any) -> tuple[Any, Callable[[], None] | None]:
        """Download the URLs given for ``Path`` parameters (see ``asgiserve.downloads``)."""
        from .codec import FileURL

        if not any(isinstance(getattr(obj, n), (FileURL, list)) for n in self.codec.path_params):
            return obj, None
        import shutil
        import tempfile

        from .downloads import fetch_urls

        folder = pathlib.Path(tempfile.mkdtemp(prefix="asgiserve-download-"))
        try:
            return await fetch_urls(self, obj, folder), lambda: shutil.rmtree(folder, ignore_errors=True)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _encode(self, result: Any) -> tuple[bytes, bytes, list[tuple[bytes, bytes]] | None]:
        kind = self._kind
        if kind == "text" and type(result) is str:
            return result.encode(), self._ct, None
        if kind == "json":
            return encode_json(result), JSON_CT, None
        if kind == "bytes" and isinstance(result, (bytes, bytearray, memoryview)):
            return bytes(result), self._ct, None
        if isinstance(result, str):
            return result.encode(), TEXT_CT, None
        if isinstance(result, (bytes, bytearray, memoryview)):
            return bytes(result), BYTES_CT, None
        return encode_json(result), JSON_CT, None

    async def _open_file(self, path: pathlib.Path) -> FileOut:
        fh = await asyncio.get_running_loop().run_in_executor(None, path.open, "rb")
        size = os.fstat(fh.fileno()).st_size
        guessed = mimetypes.guess_type(path.name)[0]
        if self._kind == "file" and self._ct != BYTES_CT:  # the api declared its media type
            ctype = self._ct
        else:
            ctype = guessed.encode() if guessed else BYTES_CT
        return FileOut(fh, size, ctype, [(b"content-disposition", _disposition(path.name))])

    async def _send_file(self, send: Callable[..., Any], fo: FileOut) -> int:
        """Stream a file output from disk in chunks (reads off the event loop)."""
        loop = asyncio.get_running_loop()
        fh, size = fo.fh, fo.size
        headers = [(b"content-type", fo.ctype), (b"content-length", b"%d" % size), *fo.extra]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if not size:
                await send({"type": "http.response.body", "body": b""})
            left = size
            while left > 0:
                chunk = await loop.run_in_executor(None, fh.read, min(_FILE_CHUNK, left))
                if not chunk:  # the file shrank while being sent: end the response abnormally
                    raise RuntimeError(f"file output {fh.name} was truncated while being sent")
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        finally:
            fh.close()
        return 200

    def _encode_item(self, item: Any) -> bytes:
        if isinstance(item, str):
            data = item.encode()
        elif isinstance(item, (bytes, bytearray, memoryview)):
            data = bytes(item)
        else:
            data = encode_json(item) + (b"" if self.codec.sse else b"\n")
        if self.codec.sse:
            lines = data.decode().splitlines() or [""]
            return ("".join(f"data: {line}\n" for line in lines) + "\n").encode()
        return data

    async def _stream(
        self,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        receive: Callable[[], Any],
        send: Callable[..., Any],
    ) -> int:
        loop = asyncio.get_running_loop()
        app = self.app
        cleanup = None
        gen: Any = None
        running: Future[Any] | None = None  # a sync ``next()`` still running in the pool
        try:
            try:
                obj = self._decode_json(headers, body)
                if obj is _FORM or self.codec.path_params:
                    obj, cleanup = await self._decode_files(obj, headers, body)
                args, kwargs = self.codec.call_args(obj)
                if not self.codec.iterator_factory:
                    gen = self.bound(*args, **kwargs)
                elif self.codec.stream == "async":
                    gen = (await self.bound(*args, **kwargs)).__aiter__()
                else:
                    gen = iter(await self._call(*args, **kwargs))
            except HTTPError as exc:
                return await app.answer_error(send, exc.status, exc.message, exc.detail)
            except Exception:
                logger.exception("api %s raised", self.spec.name)
                return await app.answer_error(send, 500, "Internal Server Error")

            if self.codec.stream == "async":

                async def step() -> Any:
                    try:
                        return await gen.__anext__()
                    except StopAsyncIteration:
                        return _STOP

            else:

                async def step() -> Any:
                    nonlocal running
                    running = app.executor.submit(next, gen, _STOP)
                    try:
                        item = await asyncio.wrap_future(running)
                    except asyncio.CancelledError:
                        if not running.done():
                            app.hold_slot_until(running)  # the thread goes on: keep its slot taken
                        raise
                    running = None
                    return item

            # The first item is produced and encoded under the deadline: an error here is a normal
            # error response; after the response started, an error ends it without its last chunk.
            try:
                first = await step()
                chunk = self._encode_item(first) if first is not _STOP else b""
            except Exception:
                logger.exception("api %s raised before its first item", self.spec.name)
                return await app.answer_error(send, 500, "Internal Server Error")
            app.deadlines.pending.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            disconnected = asyncio.Event()

            async def watch() -> None:
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        disconnected.set()
                        return

            watcher = loop.create_task(watch())
            try:
                await send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-type", self._ct)]}
                )
                item = first
                while item is not _STOP and not disconnected.is_set():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    item = await step()
                    if item is not _STOP:
                        chunk = self._encode_item(item)
                if not disconnected.is_set():
                    await send({"type": "http.response.body", "body": b""})
            finally:
                watcher.cancel()
        finally:
            if gen is not None:
                await self._close_stream(gen, running)
            if cleanup is not None:
                cleanup()
        return 200

    async def _close_stream(self, gen: Any, running: Future[Any] | None) -> None:
        """Close a stream's generator; a sync one still inside ``next()`` is closed once that returns."""
        if self.codec.stream == "async":
            aclose = getattr(gen, "aclose", None)
            if aclose is not None:
                await aclose()
            return
        close = getattr(gen, "close", None)
        if close is None:
            return
        if running is not None and not running.done():
            running.add_done_callback(lambda _: close())
        else:
            await asyncio.get_running_loop().run_in_executor(self.app.executor, close)
