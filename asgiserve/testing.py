"""Test a service in this process, without a port: ``TestClient(Svc)`` and ``AsyncTestClient(Svc)``.

They are ``SyncHTTPClient`` and ``AsyncHTTPClient`` (the same methods: one per api, ``call``,
``request``, streams as generators, files, typed errors) whose connections end in the server's own
protocol instead of a socket (``inprocess.py``): a call goes through the client's encoding, the server's
parser, the direct path or ASGI, the router, the codecs and the traffic rules, and back through the
client's response parser, so it answers as a real server would. Entering the client runs the app's
lifespan startup (``__init__``, hooks, mounted apps); leaving it runs shutdown. Outside a ``with`` block
the first use starts it and ``close()`` stops it.

``TestClient`` runs the server on an asyncio loop that a thread of its own runs between calls and each
calling thread runs for its call (``sharedloop.py``: no handover between threads per call, not even for
a sync api's function, which the calling thread runs too; calls from several threads run at once);
``AsyncTestClient`` runs it in the caller's loop. ``fixture(Svc)`` is a pytest fixture in one line.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from .app import ServiceApp
from .client._async_client import AsyncClient
from .client._sync_client import SyncClient
from .client.aiopool import AsyncConnection, AsyncConnectionPool
from .client.clients import AsyncHTTPClient, SyncHTTPClient
from .embed import make_config, resolve
from .inprocess import LocalServer, sent_by
from .sharedloop import SharedLoop

if TYPE_CHECKING:
    from .client.transport import AsyncBody
    from .client.wire import Response
    from .types import ASGIApp

__all__ = ["AsyncTestClient", "TestClient", "fixture"]

_T = TypeVar("_T")
_URL = "http://testserver"


class _Local:
    """The app and its in-process server for one test client: started on first use, stopped by ``stop``."""

    def __init__(self, target: object, options: dict[str, object]) -> None:
        options.setdefault("access_log", False)
        self.target = target
        self.config = make_config(target, options)
        # Resolved now, so that a bad target fails here; each later start builds a fresh app, since a
        # stopped one's thread pool cannot run again.
        self.app: ASGIApp | None = resolve(target, self.config)[0]
        self.service = isinstance(self.app, ServiceApp)  # a plain ASGI app has no schema to read
        self.server: LocalServer | None = None
        self.lock: asyncio.Lock | None = None
        # Called with each service app's thread pool before it starts (``SharedLoop.inline``).
        self.adopt_pool: Callable[[ThreadPoolExecutor], None] | None = None

    async def start(self) -> LocalServer:
        """Start the server (lifespan startup) unless it runs; ``StartupError`` when the app fails."""
        server = self.server
        if server is not None:
            return server
        if self.lock is None:
            self.lock = asyncio.Lock()
        async with self.lock:
            if self.server is None:
                app, self.app = self.app, None
                if app is None:
                    app = resolve(self.target, self.config)[0]
                if self.adopt_pool is not None and isinstance(app, ServiceApp):
                    self.adopt_pool(app.executor)
                started = LocalServer(self.config, app)
                await started.start()
                self.server = started
            return self.server

    async def connect(self) -> AsyncConnection:
        """A connection to the server, starting it first when needed."""
        server = await self.start()
        return await server.connect()

    def pool(self, timeout: float, max_connections: int) -> AsyncConnectionPool:
        """A connection pool whose connections are this server's pipes."""
        return AsyncConnectionPool(
            "testserver",
            80,
            max_connections=max_connections,
            connect_timeout=min(timeout, 10.0),
            read_timeout=timeout,
            opener=self.connect,
        )

    async def stop(self) -> None:
        """Drain and run lifespan shutdown (nothing when not started)."""
        server, self.server = self.server, None
        self.lock = None  # bound to this loop; a later start may run on another
        if server is not None:
            await server.stop()


class AsyncTestClient(AsyncHTTPClient):
    """``AsyncHTTPClient`` for ``target`` served in this loop: ``async with AsyncTestClient(Svc) as client``.

    ``target`` is a ``@service`` class, ``"module:Class"`` or any ASGI app; the options are the server's
    (``api_token=``, ``max_body_size=``, ``http="h11"``, ...). ``token`` defaults to ``api_token``.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(
        self,
        target: object,
        *,
        token: str | None = None,
        timeout: float = 30,
        max_connections: int = 100,
        **options: object,
    ) -> None:
        self._local = _Local(target, options)
        token = self._local.config.api_token if token is None else token
        AsyncClient.__init__(self, _URL, token, timeout, None)
        self._max_connections = max_connections
        self.pool = self._local.pool(timeout, max_connections)

    async def __aenter__(self) -> AsyncTestClient:
        try:
            await self._setup()
        except BaseException:
            await self.close()
            raise
        return self

    async def _setup(self) -> None:
        if not self._ready and not self._local.service:
            await self._local.start()
            self._ready = True
        await super()._setup()

    async def start(self) -> None:
        """Run the app's lifespan startup and read its schema (what entering does)."""
        await self._setup()

    async def close(self) -> None:
        """Close the connections, run the app's lifespan shutdown, remove downloaded files."""
        try:
            await super().close()
        finally:
            await self._local.stop()
            # A new pool and schema for a later use, which starts the app again.
            self.pool = self._local.pool(self.timeout, self._max_connections)
            self._ready = False


class _LoopBody:
    """A streamed body read by running the loop until each chunk is there."""

    def __init__(self, pool: _LoopPool, body: AsyncBody) -> None:
        self.pool = pool
        self.body: AsyncBody | None = body
        self.chunks: AsyncIterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        assert self.body is not None
        chunks = self.chunks = self.body.__aiter__()
        try:
            while True:
                try:
                    yield self.pool.on_loop(_next(chunks))
                except StopAsyncIteration:
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Give the connection back (closed unless the body was read to its end), on the client's loop."""
        chunks, self.chunks = self.chunks, None
        body, self.body = self.body, None
        if body is None:
            return
        shared = self.pool.shared
        if shared is None:
            body.close()  # the loop is gone: nothing runs on it any more
        elif shared.holds():  # collected while this thread runs the loop
            body.close()
            if chunks is not None:
                shared.loop.create_task(_aclose(chunks))
        else:
            shared.run(_finish(chunks, body))


async def _aclose(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


async def _finish(chunks: AsyncIterator[bytes] | None, body: AsyncBody) -> None:
    if chunks is not None:
        await _aclose(chunks)
    body.close()


async def _next(chunks: AsyncIterator[bytes]) -> bytes:
    return await chunks.__anext__()


class _LoopPool:
    """The blocking client's pool: the asyncio pool of ``_Local`` on a ``SharedLoop`` (``sharedloop.py``),
    which a thread of its own runs between calls and each call's thread runs for its call."""

    def __init__(self, local: _Local, timeout: float, max_connections: int) -> None:
        self.local = local
        self.timeout = timeout
        self.max_connections = max_connections
        self.shared: SharedLoop | None = None
        self.pool: AsyncConnectionPool | None = None
        self.guard = threading.Lock()  # for starting and stopping the loop

    def _started(self) -> AsyncConnectionPool:
        pool = self.pool
        if pool is None:
            with self.guard:
                if self.pool is None:
                    self.shared = SharedLoop()
                    # A sync api's function runs in the calling thread, as the rest of its call does.
                    self.local.adopt_pool = functools.partial(self.shared.inline, mine=sent_by)
                    self.pool = self.local.pool(self.timeout, self.max_connections)
            pool = self.pool
            assert pool is not None
        return pool

    def on_loop(self, aw: Coroutine[object, object, _T]) -> _T:
        """Run ``aw`` to its end on the client's loop, from this thread, and return its result."""
        shared = self.shared
        assert shared is not None
        return shared.run(aw)

    def start(self) -> None:
        """Start the app (lifespan startup) on the client's loop."""
        self._started()
        self.on_loop(self.local.start())

    def request(self, data: bytes, *, head: bool = False) -> tuple[Response, object]:
        """Send a whole request, return the whole response."""
        pool = self._started()
        return self.on_loop(pool.request(data, head=head))

    def stream(self, data: bytes) -> tuple[Response, _LoopBody]:
        """Send a whole request, return the response head and its body."""
        pool = self._started()
        resp, body = self.on_loop(pool.stream(data))
        return resp, _LoopBody(self, body)

    def close(self) -> None:
        """Close the connections, stop the app (lifespan shutdown), then the loop and its thread."""
        with self.guard:
            shared, pool = self.shared, self.pool
            if shared is None or pool is None:
                return
            try:
                shared.run(pool.close())
                shared.run(self.local.stop())
                shared.run(shared.loop.shutdown_asyncgens())
            finally:
                self.shared = self.pool = None
                shared.stop()


class TestClient(SyncHTTPClient):
    """``SyncHTTPClient`` for ``target`` served in this process: ``with TestClient(Svc) as client``.

    ``target`` is a ``@service`` class, ``"module:Class"`` or any ASGI app; the options are the server's
    (``api_token=``, ``max_body_size=``, ``http="h11"``, ...). ``token`` defaults to ``api_token``.
    The server runs on an event loop of the client's, run by a thread of its own between calls and by the
    calling thread during a call; ``AsyncTestClient`` runs it in the caller's own loop instead.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(
        self,
        target: object,
        *,
        token: str | None = None,
        timeout: float = 30,
        max_connections: int = 32,
        **options: object,
    ) -> None:
        local = _Local(target, options)
        token = local.config.api_token if token is None else token
        SyncClient.__init__(self, _URL, token, timeout, None)
        self.pool = _LoopPool(local, timeout, max_connections)

    def __getattr__(self, name: str) -> object:
        # Api methods are attached once the app started and its schema was read: start on first use.
        if name.startswith("_") or self.__dict__.get("_ready") or "pool" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._setup()
        return object.__getattribute__(self, name)

    def __enter__(self) -> TestClient:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _setup(self) -> None:
        pool = self.__dict__.get("pool")
        if not self._ready and isinstance(pool, _LoopPool) and not pool.local.service:
            pool.start()
            self._ready = True
        super()._setup()

    def start(self) -> None:
        """Run the app's lifespan startup and read its schema (what entering does)."""
        self._setup()

    def close(self) -> None:
        """Close the connections, run the app's lifespan shutdown, remove downloaded files."""
        try:
            super().close()
        finally:
            self._ready = False


def fixture(target: object, *, scope: str = "module", **options: object) -> Callable[..., object]:
    """A pytest fixture giving a started ``TestClient`` for ``target``, stopped after the last test of
    ``scope``: ``client = fixture(Svc)`` in a test module or conftest.py makes ``client`` a fixture named
    after the variable. The options are ``TestClient``'s."""
    import pytest

    def make() -> Iterator[TestClient]:
        with TestClient(target, **options) as client:  # type: ignore[arg-type]
            yield client

    return pytest.fixture(scope=scope)(make)  # type: ignore[call-overload, no-any-return]
