"""A client's calls over its connection pool, written once: readiness, plain requests, api calls, streams.

``_async_client.py`` is the source; ``_sync_client.py`` is generated from it by ``tests/unasync.py``,
token by token (``await`` and ``async`` dropped, asyncio names swapped for blocking ones), so the two
clients cannot drift. A call is: check arguments, one pre-encoded head plus body, one write, parse the
response in place; everything else was prepared when the schema was read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeVar

from ..errors import ServiceUnavailable, TransportError
from ._base import ApiMethod, ClientBase, ClientResponse
from .endpoints import Endpoint, StreamDecoder, decode_response, raise_for_status
from .wire import Headers

if TYPE_CHECKING:
    from .transport import AsyncPool

__all__ = ["AsyncClient"]

_Client = TypeVar("_Client", bound="AsyncClient")


class AsyncClient(ClientBase):
    """Everything ``AsyncHTTPClient`` does over its pool, which the subclass opens."""

    pool: AsyncPool

    def __init__(
        self, url: str, token: str | None, timeout: float, server_ready_timeout: float | None
    ) -> None:
        super().__init__(url, token, timeout, server_ready_timeout)
        self._ready = False
        self._setup_lock = asyncio.Lock()

    async def __aenter__(self: _Client) -> _Client:
        await self._setup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _setup(self) -> None:
        """Wait for the server and read its schema, once."""
        if self._ready:
            return
        async with self._setup_lock:
            if self._ready:
                return
            if self.server_ready_timeout > 0:
                await self.wait_until_ready(self.server_ready_timeout)
            r = await self.request("GET", "/schema.json")
            r.raise_for_status()
            self._set_schema(r.json(), self._method)
            self._ready = True

    async def close(self) -> None:
        """Close the connections and remove downloaded file outputs."""
        await self.pool.close()
        self._cleanup_files()

    async def wait_until_ready(self, timeout: float) -> None:
        """Poll ``/readyz`` with backoff until it answers 200; ``ServiceUnavailable`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if await self.is_ready():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServiceUnavailable(f"{self.url} is not ready after {timeout:g} s")
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    async def is_ready(self) -> bool:
        """True when ``/readyz`` answers 200."""
        try:
            r = await self.request("GET", "/readyz")
        except TransportError:
            return False
        return r.status == 200

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        content: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> ClientResponse:
        """Send any request (e.g. to a mounted app's route) and return the whole response."""
        data = self._encode_plain(method, path, json, content, headers)
        resp, _ = await self.pool.request(data, head=method.upper() == "HEAD")
        return ClientResponse(resp.status, resp.headers, resp.take_body())

    async def call(self, name: str, /, *args: object, **kwargs: object) -> object:
        """Call the api ``name`` with its arguments; a streaming api gives an iterator of its items."""
        await self._setup()
        ep = self._endpoint(name)
        if ep.stream:
            return self._stream(ep, ep.encode(ep.bind(args, kwargs)))
        return await self._call(ep, args, kwargs)

    def _method(self, ep: Endpoint) -> ApiMethod:
        """The method attached for ``ep``: a call, or a function returning the stream of its items."""
        if ep.stream:
            stream = self._stream

            def stream_method(*args: object, **kwargs: object) -> AsyncIterator[object]:
                return stream(ep, ep.encode(ep.bind(args, kwargs)))

            return stream_method
        call = self._call

        async def method(*args: object, **kwargs: object) -> object:
            return await call(ep, args, kwargs)

        return method

    async def _call(self, ep: Endpoint, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        resp, _ = await self.pool.request(ep.encode(ep.bind(args, kwargs)))
        body = resp.take_body()
        if resp.status >= 400:
            raise_for_status(resp, body)
        return decode_response(ep, resp, body, self._tmpdir)

    async def _stream(self, ep: Endpoint, data: bytes) -> AsyncIterator[object]:
        resp, stream = await self.pool.stream(data)
        try:
            if resp.status >= 400:
                raise_for_status(resp, b"".join([chunk async for chunk in stream]))
            decoder = StreamDecoder(ep, resp.headers.get("content-type", ""))
            async for chunk in stream:
                for item in decoder.feed(chunk):
                    yield item
            for item in decoder.flush():
                yield item
        finally:
            stream.close()
