"""Test a service in this process, without a port: ``TestClient(Svc)`` and ``AsyncTestClient(Svc)``.

They are ``SyncHTTPClient`` and ``AsyncHTTPClient`` (the same methods: one per api, ``call``,
``request``, streams as generators, files, typed errors) whose connections end in the server's own
protocol instead of a socket (``inprocess.py``): a call goes through the client's encoding, the server's
parser, the direct path or ASGI, the router, the codecs and the traffic rules, and back through the
client's response parser, so it answers as a real server would. Entering the client runs the app's
lifespan startup (``__init__``, hooks, mounted apps); leaving it runs shutdown. Outside a ``with`` block
the first use starts it and ``close()`` stops it.

``TestClient`` runs the server on an event loop in a thread of its own (calls from several threads run
at once); ``AsyncTestClient`` runs it in the caller's loop. ``fixture(Svc)`` is a pytest fixture in one
line.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import selectors
import sys
import threading
import time
from asyncio import events
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from typing import TYPE_CHECKING, TypeVar

from .app import ServiceApp
from .client._async_client import AsyncClient
from .client._sync_client import SyncClient
from .client.aiopool import AsyncConnection, AsyncConnectionPool
from .client.clients import AsyncHTTPClient, SyncHTTPClient
from .embed import make_config, resolve
from .inprocess import LocalServer

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
        pool = self.pool
        loop = pool.loop
        if loop is None:
            body.close()  # the loop is gone: nothing runs on it any more
        elif pool.holder == threading.get_ident():  # collected while this thread runs the loop
            body.close()
            if chunks is not None:
                loop.create_task(_aclose(chunks))
        else:
            pool.on_loop(_finish(chunks, body))


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


def _nothing() -> None:
    pass


_IDLE = 0.005  # seconds without a call before the loop's own thread waits for I/O again
_SLACK = 0.001  # a timer due this close to a waiting thread's own wake-up is not worth waking it for


class _Yield:
    """Hands what a coroutine yielded (a future it waits for, or None for a bare turn) to the task."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __await__(self) -> Generator[object, None, None]:
        yield self.value


async def _carry(coro: Coroutine[object, object, _T], waiting: object, caller: int) -> _T:
    """Carry on, as a task, ``coro`` whose first step ran outside any task and yielded ``waiting``."""
    try:
        while True:
            error: BaseException | None = None
            try:
                await _Yield(waiting)
            except BaseException as exc:  # thrown in by the task (a cancellation): the coroutine gets it
                error = exc
            try:
                waiting = coro.send(None) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
    finally:
        if threading.get_ident() != caller:  # ended by another thread's pass: wake the caller's select
            asyncio.get_running_loop().call_soon_threadsafe(_nothing)


class _Selector(selectors.DefaultSelector):  # type: ignore[misc, valid-type]
    """The loop's selector: a thread that waits for I/O or a timer gives the loop up meanwhile, so that
    another thread can take it for a call (``_LoopPool.on_loop``)."""

    def __init__(self, pool: _LoopPool) -> None:
        super().__init__()
        self.pool = pool

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Wait for I/O, letting go of the loop meanwhile.

        Several threads may wait at once: the loop's file descriptors are level-triggered, so an event
        wakes each of them; each then takes the loop in turn, and one that finds the event taken already
        reads nothing (asyncio's readers take ``EAGAIN`` in their stride)."""
        if timeout == 0:
            return super().select(0)  # type: ignore[no-any-return]
        pool = self.pool
        me = threading.get_ident()
        if me == pool.owner and pool.standby():
            return super().select(0)  # type: ignore[no-any-return]  # time went by: a fresh pass
        waiting = pool.waiting
        waiting[me] = math.inf if timeout is None else time.monotonic() + timeout
        pool.holder = None
        pool.lock.release()
        try:
            return super().select(timeout)  # type: ignore[no-any-return]
        finally:
            del waiting[me]  # awake: its next pass sees whatever another thread left
            pool.lock.acquire()
            pool.holder = me


class _LoopPool:
    """The blocking client's pool: the asyncio pool of ``_Local`` on an event loop that a thread of its
    own runs between calls, and each call's thread runs for the call.

    The loop keeps running when no call does (lifespan tasks, streams, tasks go on), while a call takes
    no turn on another thread: its thread takes the loop (``lock``) whenever the thread running it waits
    for I/O, starts the call and runs the loop's passes itself until the call ends; most calls end within
    their first step, since the in-process pipe answers within the caller's write. A thread waiting for
    I/O lets go of the loop, so several threads may call at once, and a call works from inside another
    event loop too (it blocks that loop's thread while it waits, as any blocking call does). The loop is
    asyncio's own: a thread that is not the loop's can run its passes (uvloop runs them without the GIL,
    and sets up its signal handling on each run in the main thread, which costs more than a call).
    """

    def __init__(self, local: _Local, timeout: float, max_connections: int) -> None:
        self.local = local
        self.timeout = timeout
        self.max_connections = max_connections
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.pool: AsyncConnectionPool | None = None
        self.guard = threading.Lock()  # for starting and stopping the loop
        self.lock = threading.Lock()  # held by whichever thread runs the loop's pass
        self.holder: int | None = None  # that thread; None while all wait for I/O
        self.waiting: dict[int, float] = {}  # threads waiting for I/O: when each wakes up by itself
        self.owner: int | None = None  # the loop's own thread
        self.calls = 0  # calls running the loop now
        self.last = 0.0  # when the last one ended
        self.nudge = threading.Event()  # set to end the loop thread's standby at once

    def standby(self) -> bool:
        """While calls run the loop, the loop's thread stands by instead of waiting for I/O (which would
        wake it for every event of theirs) and takes a pass when timers are due or callbacks left with
        nobody running them; True after standing by. Called by the loop's thread, holding the loop."""
        loop = self.loop
        assert isinstance(loop, asyncio.BaseEventLoop)
        stood = False
        while self.calls or time.monotonic() - self.last < _IDLE:
            if stood and (loop._ready or (loop._scheduled and loop._scheduled[0].when() <= loop.time())):  # type: ignore[attr-defined]
                break
            stood = True
            self.holder = None
            self.lock.release()
            try:
                self.nudge.wait(_IDLE)
            finally:
                self.lock.acquire()
                self.holder = self.owner
            if self.nudge.is_set():
                break
        return stood

    def _started(self) -> AsyncConnectionPool:
        pool = self.pool
        if pool is None:
            with self.guard:
                if self.pool is None:
                    loop = self.loop = asyncio.SelectorEventLoop(_Selector(self))
                    self.thread = threading.Thread(
                        target=self._serve, args=(loop,), name="asgiserve TestClient", daemon=True
                    )
                    self.thread.start()
                    self.pool = self.local.pool(self.timeout, self.max_connections)
            pool = self.pool
            assert pool is not None
        return pool

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:
            self.owner = self.holder = threading.get_ident()
            try:
                loop.run_forever()
            finally:
                self.holder = None

    def on_loop(self, aw: Coroutine[object, object, _T]) -> _T:
        """Run ``aw`` to its end on the client's loop, from this thread, and return its result."""
        loop = self.loop
        assert isinstance(loop, asyncio.BaseEventLoop)
        me = threading.get_ident()
        if self.holder == me:
            aw.close()
            raise RuntimeError("a blocking TestClient call from inside the client's own event loop")
        task: asyncio.Task[_T] | None = None
        with self.lock:  # while the thread running the loop waits for I/O (or when its pass ends)
            self.holder = me
            self.calls += 1
            running = events._get_running_loop()
            hooks = sys.get_asyncgen_hooks()
            thread_id = loop._thread_id  # type: ignore[attr-defined]
            # This thread runs the loop for now: what a running loop's thread has.
            events._set_running_loop(loop)
            loop._thread_id = me  # type: ignore[attr-defined]
            sys.set_asyncgen_hooks(
                firstiter=loop._asyncgen_firstiter_hook,  # type: ignore[attr-defined]
                finalizer=loop._asyncgen_finalizer_hook,  # type: ignore[attr-defined]
            )
            ready = loop._ready  # type: ignore[attr-defined]
            try:
                # The first step outside any task, as a task's first step would run (in a copy of this
                # context): most calls end within it, which spares the task and the loop pass.
                context = contextvars.copy_context()
                try:
                    waiting = context.run(aw.send, None)
                except StopIteration as stop:
                    result: _T = stop.value
                else:
                    task = context.run(loop.create_task, _carry(aw, waiting, me))
                    run_once = loop._run_once  # type: ignore[attr-defined]
                    while not task.done():
                        run_once()
            finally:
                if ready:
                    # What the call left for the end of its pass (the server's held writes); timers and
                    # I/O are for the next pass, whichever thread runs it.
                    for _ in range(len(ready)):
                        handle = ready.popleft()
                        if not handle._cancelled:
                            handle._run()
                sys.set_asyncgen_hooks(*hooks)
                loop._thread_id = thread_id  # type: ignore[attr-defined]
                events._set_running_loop(running)
                self.holder = None
                self.calls -= 1
                self.last = time.monotonic()
                # The others sleep until their next timer or I/O: wake them for what this call left.
                waiters = self.waiting
                if waiters:
                    scheduled = loop._scheduled  # type: ignore[attr-defined]
                    if ready or (scheduled and scheduled[0].when() < min(waiters.values()) - _SLACK):
                        loop.call_soon_threadsafe(_nothing)
        return result if task is None else task.result()

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
            loop, pool, thread = self.loop, self.pool, self.thread
            if loop is None or pool is None or thread is None:
                return
            try:
                self.on_loop(pool.close())
                self.on_loop(self.local.stop())
                self.on_loop(loop.shutdown_asyncgens())
            finally:
                self.loop = self.pool = self.thread = None
                loop.call_soon_threadsafe(loop.stop)
                self.nudge.set()
                thread.join()
                loop.close()


class TestClient(SyncHTTPClient):
    """``SyncHTTPClient`` for ``target`` served in this process: ``with TestClient(Svc) as client``.

    ``target`` is a ``@service`` class, ``"module:Class"`` or any ASGI app; the options are the server's
    (``api_token=``, ``max_body_size=``, ``http="h11"``, ...). ``token`` defaults to ``api_token``.
    The server runs on an event loop in a thread of the client's; ``AsyncTestClient`` runs it in the
    caller's own loop instead.
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
