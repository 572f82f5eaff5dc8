"""The api hot path: read body, decode, call (loop or thread pool) under the traffic timeout, encode, send.

Rules kept here:
- the timeout covers everything before the response starts; it cancels the request's own task with a
  timer instead of wrapping the call in a new task (``asyncio.wait_for`` would cost a task per request);
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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .codec import BYTES_CT, JSON_CT, TEXT_CT, APICodec, encode_json
from .errors import HTTPError, UnsupportedMediaType
from .service import APISpec

if TYPE_CHECKING:
    from .app import ServiceApp

__all__ = ["APIHandler", "ClientDisconnected", "read_body"]

logger = logging.getLogger("asgiserve")
_STOP = object()
_FILE_CHUNK = 256 * 1024
_JSON_LIKE = (b"application/json", b"text/plain", b"application/x-www-form-urlencoded")


class ClientDisconnected(Exception):
    """The client went away before the request body was complete."""


async def read_body(receive: Callable[[], Any]) -> bytes:
    """The whole request body (one ``receive`` call in the common case)."""
    msg = await receive()
    if msg["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = msg.get("body", b"")
    if not msg.get("more_body"):
        return body
    parts = [body]
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientDisconnected
        parts.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(parts)


def _expire(task: asyncio.Task[Any] | None, expired: list[bool]) -> None:
    expired.append(True)
    if task is not None:
        task.cancel()


def _uncancel(task: asyncio.Task[Any] | None) -> None:
    # Python 3.11+ counts cancellation requests; a timeout we turned into a 504 is not one to propagate.
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


def _disposition(name: str) -> bytes:
    """A Content-Disposition header value: an ASCII fallback plus the RFC 8187 UTF-8 form when needed."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "").replace("\\", "")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{urllib.parse.quote(name)}"
    return value.encode("latin-1")


def _content_type(scope: dict[str, Any]) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value).lower()
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
        self.is_async = asyncio.iscoroutinefunction(func)
        self.bound: Callable[..., Any] = func  # replaced by the instance's method at startup
        out = self.codec.output
        self._kind = out.kind
        self._ct = out.content_type

    def bind(self, instance: Any) -> None:
        """Point the handler at the live service instance's method."""
        self.bound = getattr(instance, self.attr)

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[..., Any]
    ) -> int:
        """Handle one POST to this api and return the status sent."""
        app = self.app
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        expired: list[bool] = []
        timer = loop.call_later(app.timeout, _expire, task, expired)
        cleanup: Callable[[], None] | None = None
        file_out: tuple[Any, int, bytes, list[tuple[bytes, bytes]]] | None = None
        try:
            body = await read_body(receive)
            ctype = _content_type(scope)
            if ctype is None or ctype.startswith(_JSON_LIKE) or ctype.endswith(b"+json"):
                obj = self.codec.decode(body)
                if self.codec.path_params:
                    obj, cleanup = await self.fetch_urls(obj)
            elif ctype.startswith(b"multipart/form-data"):
                obj, cleanup = await self.decode_form(body, ctype)
            else:
                raise UnsupportedMediaType(
                    f"Unsupported content type {ctype.decode('latin-1')!r}: send application/json"
                    + (" or multipart/form-data" if self.codec.file_params else "")
                )
            args, kwargs = self.codec.call_args(obj)
            if self.codec.stream != "none":
                return await self._stream(scope, receive, send, timer, args, kwargs)
            if self.is_async:
                result = await self.bound(*args, **kwargs)
            else:
                cfut: Future[Any] = app.executor.submit(self.bound, *args, **kwargs)
                try:
                    result = await asyncio.wrap_future(cfut)
                except asyncio.CancelledError:
                    if not cfut.done():
                        app.hold_slot_until(cfut)
                    raise
            timer.cancel()
            if isinstance(result, pathlib.PurePath) and self._kind in ("file", "dynamic"):
                # Opened here so that a missing file is an ordinary 500; sent after the try block.
                file_out = await self._open_file(pathlib.Path(result))
            else:
                body_out, ctype_out, extra = await self._encode(result)
        except asyncio.CancelledError:
            if not expired:
                raise
            _uncancel(task)
            return await app.answer_error(send, 504, f"No response within the {app.timeout:g} s timeout")
        except ClientDisconnected:
            timer.cancel()
            return 499
        except HTTPError as exc:
            timer.cancel()
            return await app.answer_error(send, exc.status, exc.message, exc.detail)
        except Exception:
            timer.cancel()
            logger.exception("api %s raised", self.spec.name)
            return await app.answer_error(send, 500, "Internal Server Error")
        finally:
            timer.cancel()
            if cleanup is not None:
                cleanup()
        if file_out is not None:
            return await self._send_file(send, *file_out)
        headers = [(b"content-type", ctype_out), (b"content-length", b"%d" % len(body_out))]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body_out})
        return 200

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

    async def _encode(self, result: Any) -> tuple[bytes, bytes, list[tuple[bytes, bytes]] | None]:
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

    async def _open_file(self, path: pathlib.Path) -> tuple[Any, int, bytes, list[tuple[bytes, bytes]]]:
        fh = await asyncio.get_running_loop().run_in_executor(None, path.open, "rb")
        size = os.fstat(fh.fileno()).st_size
        guessed = mimetypes.guess_type(path.name)[0]
        if self._kind == "file" and self._ct != BYTES_CT:  # the api declared its media type
            ctype = self._ct
        else:
            ctype = guessed.encode() if guessed else BYTES_CT
        return fh, size, ctype, [(b"content-disposition", _disposition(path.name))]

    async def _send_file(
        self, send: Callable[..., Any], fh: Any, size: int, ctype: bytes, extra: list[tuple[bytes, bytes]]
    ) -> int:
        """Stream a file output from disk in chunks (reads off the event loop)."""
        loop = asyncio.get_running_loop()
        headers = [(b"content-type", ctype), (b"content-length", b"%d" % size), *extra]
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
            lines = data.decode().split("\n")
            return ("".join(f"data: {line}\n" for line in lines) + "\n").encode()
        return data

    async def _stream(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Any],
        send: Callable[..., Any],
        timer: asyncio.TimerHandle,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> int:
        loop = asyncio.get_running_loop()
        gen = self.bound(*args, **kwargs)
        if self.codec.stream == "async":

            async def step() -> Any:
                try:
                    return await gen.__anext__()
                except StopAsyncIteration:
                    return _STOP

        else:
            executor: ThreadPoolExecutor = self.app.executor

            async def step() -> Any:
                return await loop.run_in_executor(executor, next, gen, _STOP)

        # The first item is produced under the timeout: an error here is a normal error response.
        first = await step()
        timer.cancel()
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = loop.create_task(watch())
        try:
            ctype = TEXT_CT if self._kind == "text" and not self.codec.sse else self._ct
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]})
            item = first
            while item is not _STOP and not disconnected.is_set():
                await send({"type": "http.response.body", "body": self._encode_item(item), "more_body": True})
                item = await step()
            if not disconnected.is_set():
                await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()
            if self.codec.stream == "async":
                await gen.aclose()
            else:
                await loop.run_in_executor(self.app.executor, gen.close)
        return 200
