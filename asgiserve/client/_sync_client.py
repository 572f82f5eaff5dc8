# Generated from _async_client.py by tests/unasync.py: edit that file and run `python tests/unasync.py`.
"""A client's calls over its connection pool, written once: readiness, plain requests, api calls, streams.

``_async_client.py`` is the source; ``_sync_client.py`` is generated from it by ``tests/unasync.py``,
token by token (``await`` and ``async`` dropped, asyncio names swapped for blocking ones), so the two
clients cannot drift. A call is: check arguments, one pre-encoded head plus body, one write, parse the
response in place; everything else was prepared when the schema was read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

from ..errors import ServiceUnavailable, TransportError
from ._base import ApiMethod, ClientBase, ClientResponse
from .endpoints import Endpoint, StreamDecoder, decode_response, raise_for_status
from .wire import Headers

if TYPE_CHECKING:
    from .transport import Pool

__all__ = ["SyncClient"]

_Client = TypeVar("_Client", bound="SyncClient")


class SyncClient(ClientBase):
    """Everything ``SyncHTTPClient`` does over its pool, which the subclass opens."""

    pool: Pool

    def __init__(
        self, url: str, token: str | None, timeout: float, server_ready_timeout: float | None
    ) -> None:
        super().__init__(url, token, timeout, server_ready_timeout)
        self._ready = False
        self._setup_lock = threading.Lock()

    def __enter__(self: _Client) -> _Client:
        self._setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        """Wait for the server and read its schema, once."""
        if self._ready:
            return
        with self._setup_lock:
            if self._ready:
                return
            if self.server_ready_timeout > 0:
                self.wait_until_ready(self.server_ready_timeout)
            r = self.request("GET", "/schema.json")
            r.raise_for_status()
            self._set_schema(r.json(), self._method)
            self._ready = True

    def close(self) -> None:
        """Close the connections and remove downloaded file outputs."""
        self.pool.close()
        self._cleanup_files()

    def wait_until_ready(self, timeout: float) -> None:
        """Poll ``/readyz`` with backoff until it answers 200; ``ServiceUnavailable`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if self.is_ready():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServiceUnavailable(f"{self.url} is not ready after {timeout:g} s")
            time.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    def is_ready(self) -> bool:
        """True when ``/readyz`` answers 200."""
        try:
            r = self.request("GET", "/readyz")
        except TransportError:
            return False
        return r.status == 200

    def request(
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
        resp, _ = self.pool.request(data, head=method.upper() == "HEAD")
        return ClientResponse(resp.status, resp.headers, resp.take_body())

    def call(self, name: str, /, *args: object, **kwargs: object) -> object:
        """Call the api ``name`` with its arguments; a streaming api gives an iterator of its items."""
        self._setup()
        ep = self._endpoint(name)
        if ep.stream:
            return self._stream(ep, ep.encode(ep.bind(args, kwargs)))
        return self._call(ep, args, kwargs)

    def _method(self, ep: Endpoint) -> ApiMethod:
        """The method attached for ``ep``: a call, or a function returning the stream of its items."""
        if ep.stream:
            stream = self._stream

            def stream_method(*args: object, **kwargs: object) -> Iterator[object]:
                return stream(ep, ep.encode(ep.bind(args, kwargs)))

            return stream_method
        call = self._call

        def method(*args: object, **kwargs: object) -> object:
            return call(ep, args, kwargs)

        return method

    def _call(self, ep: Endpoint, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        resp, _ = self.pool.request(ep.encode(ep.bind(args, kwargs)))
        body = resp.take_body()
        if resp.status >= 400:
            raise_for_status(resp, body)
        return decode_response(ep, resp, body, self._tmpdir)

    def _stream(self, ep: Endpoint, data: bytes) -> Iterator[object]:
        resp, stream = self.pool.stream(data)
        try:
            if resp.status >= 400:
                raise_for_status(resp, b"".join([chunk for chunk in stream]))
            decoder = StreamDecoder(ep, resp.headers.get("content-type", ""))
            for chunk in stream:
                for item in decoder.feed(chunk):
                    yield item
            for item in decoder.flush():
                yield item
        finally:
            stream.close()
