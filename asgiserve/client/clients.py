"""``SyncHTTPClient`` and ``AsyncHTTPClient``: one method per api of a running service.

Both wait for ``/readyz`` (exponential backoff), read ``/schema.json`` and attach a method per api, so
``client.summarize(text=...)`` checks its arguments before sending anything. Their calls are written once,
in ``_async_client.py``, and generated for the blocking client (``_sync_client.py``); what differs is here:
the blocking client is ready when constructed, the asyncio one when first entered or called.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ._async_client import AsyncClient
from ._base import ClientResponse, Verify
from ._sync_client import SyncClient
from .aiopool import AsyncConnectionPool
from .pool import ConnectionPool

__all__ = ["AsyncHTTPClient", "ClientResponse", "SyncHTTPClient"]


class SyncHTTPClient(SyncClient):
    """A blocking client for a running service, with one method per api (thread-safe)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30,
        server_ready_timeout: float | None = None,
        max_connections: int = 32,
        verify: Verify = True,
        retries: int = 0,
        codec: str = "json",
    ) -> None:
        super().__init__(url, token, timeout, server_ready_timeout, verify, codec)
        # ``retries``: the caller's calls may run twice, so one that failed on the network before any
        # response byte is sent again up to that many times (by default only what cannot run twice is).
        self.pool = ConnectionPool(
            self._hostname, self._port, **self._pool_options(max_connections), retries=retries
        )
        try:
            self._setup()
        except BaseException:
            self.close()
            raise


class AsyncHTTPClient(AsyncClient):
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
        verify: Verify = True,
        retries: int = 0,
        codec: str = "json",
    ) -> None:
        super().__init__(url, token, timeout, server_ready_timeout, verify, codec)
        self.pool = AsyncConnectionPool(
            self._hostname, self._port, **self._pool_options(max_connections), retries=retries
        )

    def __getattr__(self, name: str) -> Callable[..., Awaitable[object]]:
        # Before the schema is read, api methods are unknown: defer to a call that reads it first.
        if name.startswith("_") or self.__dict__.get("_ready"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def deferred(*args: object, **kwargs: object) -> Awaitable[object]:
            return self._deferred(name, args, kwargs)

        return deferred

    async def _deferred(self, name: str, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        await self._setup()
        ep = self._endpoint(name)
        if ep.stream:
            raise TypeError(f"{name}() streams: open the client with `async with` first")
        return await self._call(ep, args, kwargs)
