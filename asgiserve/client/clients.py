"""``SyncHTTPClient`` and ``AsyncHTTPClient``: one method per api of a running service.

Both wait for ``/readyz`` (exponential backoff; the async one only sleeps with ``asyncio.sleep``), read
``/schema.json`` and attach a method per api, so ``client.summarize(text=...)`` checks its arguments
before sending anything. A call is: check arguments, one pre-encoded head plus body, one write, parse the
response in place; everything else was prepared when the schema was read.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import msgspec

from ..errors import ServiceUnavailable
from .aiopool import AsyncConnectionPool, AsyncStream
from .endpoints import Endpoint, StreamDecoder, decode_response, raise_for_status
from .pool import ConnectionPool, SyncStream
from .wire import Response, TransportError, encode_head, header_list

__all__ = ["AsyncHTTPClient", "ClientResponse", "SyncHTTPClient"]

_RESERVED = frozenset({"call", "close", "is_ready", "request", "endpoints", "url", "pool", "schema"})
_USER_AGENT = "asgiserve-client/0.1"


class ClientResponse:
    """The answer to ``client.request(...)``: status, headers (lower-case names) and body."""

    __slots__ = ("content", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status = status
        self.headers = headers
        self.content = content

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status}, {len(self.content)} bytes>"

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.content)

    def raise_for_status(self) -> None:
        """Raise the typed ``HTTPError`` when the status is 400 or above."""
        resp = Response()
        resp.status, resp.headers = self.status, self.headers
        raise_for_status(resp, self.content)


class _Base:
    """URL, headers and schema handling shared by both clients."""

    def __init__(
        self, url: str, token: str | None, timeout: float, server_ready_timeout: float | None
    ) -> None:
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._hostname = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        default_port = self._port == (443 if self._tls else 80)
        self._host = self._hostname if default_port else f"{self._hostname}:{self._port}"
        if ":" in self._hostname:
            self._host = f"[{self._hostname}]" + ("" if default_port else f":{self._port}")
        self._base = parts.path.rstrip("/")
        self._headers = [("User-Agent", _USER_AGENT)]
        if token:
            self._headers.append(("Authorization", f"Bearer {token}"))
        self.timeout = timeout
        self.server_ready_timeout = timeout if server_ready_timeout is None else server_ready_timeout
        self.endpoints: dict[str, Endpoint] = {}
        self.schema: dict[str, Any] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def _tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="asgiserve-client-")
        return self._tmp.name

    def _cleanup_files(self) -> None:
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()

    def _encode_plain(self, method: str, path: str, body: bytes, headers: Any) -> bytes:
        extra = header_list(headers)
        names = {k.lower() for k, _ in extra}
        base = [h for h in self._headers if h[0].lower() not in names]
        target = self._base + (path if path.startswith("/") else "/" + path)
        head = encode_head(method.upper(), target, self._host, base + extra)
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            head += b"Content-Length: %d\r\n" % len(body)
        return head + b"\r\n" + body

    def _set_schema(self, schema: dict[str, Any], make: Callable[[Endpoint], Callable[..., Any]]) -> None:
        self.schema = schema
        for route in schema.get("routes", ()):
            ep = Endpoint(route, self._host, self._base, self._headers)
            self.endpoints[ep.name] = ep
            if ep.name not in _RESERVED and ep.name.isidentifier():
                method = make(ep)
                method.__name__ = ep.name
                method.__doc__ = ep.doc
                method.__signature__ = ep.signature  # type: ignore[attr-defined]
                setattr(self, ep.name, method)

    def _endpoint(self, name: str) -> Endpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            raise TypeError(f"the service has no api named {name!r}") from None


def _request_body(json: Any, content: bytes | str | None, headers: Any) -> tuple[bytes, Any]:
    if json is not None:
        extra = [*header_list(headers), ("Content-Type", "application/json")]
        return msgspec.json.encode(json), extra
    if isinstance(content, str):
        content = content.encode()
    return content or b"", headers


class SyncHTTPClient(_Base):
    """A blocking client for a running service, with one method per api (thread-safe)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30,
        server_ready_timeout: float | None = None,
        max_connections: int = 32,
    ) -> None:
        super().__init__(url, token, timeout, server_ready_timeout)
        self.pool = ConnectionPool(
            self._hostname,
            self._port,
            ssl_context=self._tls,
            max_connections=max_connections,
            connect_timeout=min(timeout, 10.0),
            read_timeout=timeout,
        )
        try:
            if self.server_ready_timeout > 0:
                self.wait_until_ready(self.server_ready_timeout)
            r = self.request("GET", "/schema.json")
            r.raise_for_status()
            self._set_schema(r.json(), self._method)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<SyncHTTPClient {self.url} apis={list(self.endpoints)}>"

    def __enter__(self) -> SyncHTTPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            return self.request("GET", "/readyz").status == 200
        except TransportError:
            return False

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Any = None,
    ) -> ClientResponse:
        """Send any request (e.g. to a mounted app's route) and return the whole response."""
        body, headers = _request_body(json, content, headers)
        data = self._encode_plain(method, path, body, headers)
        resp, _ = self.pool.request(data, head=method.upper() == "HEAD")
        return ClientResponse(resp.status, resp.headers, resp.take_body())

    def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the api ``name`` with its arguments."""
        return self._call(self._endpoint(name), args, kwargs)

    def _method(self, ep: Endpoint) -> Callable[..., Any]:
        call = self._call

        def method(*args: Any, **kwargs: Any) -> Any:
            return call(ep, args, kwargs)

        return method

    def _call(self, ep: Endpoint, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        data = ep.encode(ep.bind(args, kwargs))
        if ep.stream:
            return self._stream(ep, data)
        resp, _ = self.pool.request(data)
        body = resp.take_body()
        if resp.status >= 400:
            raise_for_status(resp, body)
        return decode_response(ep, resp, body, self._tmpdir)

    def _stream(self, ep: Endpoint, data: bytes) -> Generator[Any, None, None]:
        resp, conn = self.pool.request(data, stream=True)
        stream = SyncStream(self.pool, conn, resp)
        try:
            if resp.status >= 400:
                raise_for_status(resp, b"".join(stream))
            decoder = StreamDecoder(ep, resp.headers.get("content-type", ""))
            for chunk in stream:
                yield from decoder.feed(chunk)
            yield from decoder.flush()
        finally:
            stream.close()


class AsyncHTTPClient(_Base):
    """An asyncio client for a running service, with one coroutine method per api.

    Use it as ``async with AsyncHTTPClient(url) as client``; outside a ``with`` block the first call waits
    for the server and reads its schema.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30,
        server_ready_timeout: float | None = None,
        max_connections: int = 100,
    ) -> None:
        super().__init__(url, token, timeout, server_ready_timeout)
        self.pool = AsyncConnectionPool(
            self._hostname,
            self._port,
            ssl_context=self._tls,
            max_connections=max_connections,
            connect_timeout=min(timeout, 10.0),
            read_timeout=timeout,
        )
        self._ready = False
        self._setup_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<AsyncHTTPClient {self.url} apis={list(self.endpoints)}>"

    async def __aenter__(self) -> AsyncHTTPClient:
        await self._setup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        # Before the schema is read, api methods are unknown: defer to a call that reads it first.
        if name.startswith("_") or self.__dict__.get("_ready"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def deferred(*args: Any, **kwargs: Any) -> Any:
            return self._deferred(name, args, kwargs)

        return deferred

    async def _deferred(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        await self._setup()
        ep = self._endpoint(name)
        if ep.stream:
            raise TypeError(f"{name}() streams: open the client with `async with` first")
        return await self._call(ep, args, kwargs)

    async def _setup(self) -> None:
        if self._ready:
            return
        if self._setup_lock is None:
            self._setup_lock = asyncio.Lock()
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.02
        while True:
            if await self.is_ready():
                return
            left = deadline - loop.time()
            if left <= 0:
                raise ServiceUnavailable(f"{self.url} is not ready after {timeout:g} s")
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    async def is_ready(self) -> bool:
        """True when ``/readyz`` answers 200."""
        try:
            return (await self.request("GET", "/readyz")).status == 200
        except TransportError:
            return False

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Any = None,
    ) -> ClientResponse:
        """Send any request (e.g. to a mounted app's route) and return the whole response."""
        body, headers = _request_body(json, content, headers)
        data = self._encode_plain(method, path, body, headers)
        resp, _ = await self.pool.request(data, head=method.upper() == "HEAD")
        return ClientResponse(resp.status, resp.headers, resp.take_body())

    async def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call a non-streaming api ``name`` with its arguments (use ``stream`` for streaming apis)."""
        await self._setup()
        ep = self._endpoint(name)
        if ep.stream:
            return self._stream(ep, ep.encode(ep.bind(args, kwargs)))
        return await self._call(ep, args, kwargs)

    def _method(self, ep: Endpoint) -> Callable[..., Any]:
        if ep.stream:
            stream = self._stream

            def stream_method(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
                return stream(ep, ep.encode(ep.bind(args, kwargs)))

            return stream_method
        call = self._call

        async def method(*args: Any, **kwargs: Any) -> Any:
            return await call(ep, args, kwargs)

        return method

    async def _call(self, ep: Endpoint, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        data = ep.encode(ep.bind(args, kwargs))
        resp, _ = await self.pool.request(data)
        body = resp.take_body()
        if resp.status >= 400:
            raise_for_status(resp, body)
        return decode_response(ep, resp, body, self._tmpdir)

    async def _stream(self, ep: Endpoint, data: bytes) -> AsyncGenerator[Any, None]:
        resp, conn = await self.pool.request(data, stream=True)
        stream = AsyncStream(self.pool, conn, resp)
        try:
            if resp.status >= 400:
                raise_for_status(resp, b"".join([c async for c in stream]))
            decoder = StreamDecoder(ep, resp.headers.get("content-type", ""))
            async for chunk in stream:
                for item in decoder.feed(chunk):
                    yield item
            for item in decoder.flush():
                yield item
        finally:
            stream.close()
