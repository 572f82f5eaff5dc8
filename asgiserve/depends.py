"""``depends``: a service that uses another, in the same worker or over HTTP.

``dep = asgiserve.depends(Other)`` as a class attribute builds ``Other`` in the same worker, before the
dependent (its own dependencies first), once per worker; its apis are then plain method calls, and
``dep.to_async.api(...)`` / ``dep.to_sync.api(...)`` call a sync api from async code (in ``Other``'s own
thread pool of ``threads`` threads) or an async api from sync code. ``depends(url=...)`` is a proxy over
asgiserve's clients instead: an api declared ``async def`` (on ``on=``, when given) is called with the
``AsyncHTTPClient``, a sync one with the ``SyncHTTPClient``; the server's API token is passed on. A service
with remote dependencies is ready only while they answer ready.

Imported with ``asgiserve`` (so kept light: asyncio, the thread pool and the clients load when a dependency is
built).
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

from .service import get_apis, get_spec

if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator, Callable, Iterator
    from concurrent.futures import ThreadPoolExecutor

    from .client import AsyncHTTPClient, SyncHTTPClient

__all__ = ["Dependency", "RemoteService", "depends", "start_dependencies", "stop_dependencies"]

T = TypeVar("T")
_NOT_ATTRIBUTE = "Dependency must be accessed as a class attribute"
_READY_TIMEOUT = 2.0  # a remote that does not answer /readyz within this is not ready


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


class Dependency(Generic[T]):
    """A class attribute standing for another service: built in this worker, or a proxy to a URL."""

    def __init__(self, on: type[T] | None, url: str | None) -> None:
        self.on = on
        self.url = url
        self.token: str | None = None  # the serving app's token, passed on to a remote service
        self._resolved: object = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        target = self.url or getattr(self.on, "__name__", "?")
        return f"<Dependency on {target}>"

    @overload
    def __get__(self, instance: None, owner: type) -> Dependency[T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> T: ...
    def __get__(self, instance: object, owner: type) -> Dependency[T] | T:
        if instance is None:
            return self
        return self.get()

    def __getattr__(self, name: str) -> object:
        # Reached only for names the Dependency itself lacks: someone used it as the service it stands for.
        raise AttributeError(_NOT_ATTRIBUTE)

    def get(self) -> T:
        """The dependency for this worker (built on first use); typed as ``on``, which a remote proxy
        stands for."""
        resolved = self._resolved
        if resolved is None:
            with self._lock:
                if self._resolved is None:
                    self._resolved = self._build()
                resolved = self._resolved
        return cast("T", resolved)

    def _build(self) -> object:
        if self.url is not None:
            return RemoteService(self.url, self.on, self.token)
        assert self.on is not None
        return _build_local(self.on)


@overload
def depends(
    on: None = None, *, url: str | None = None, deployment: str | None = None, cluster: str | None = None
) -> Dependency[RemoteService]: ...
@overload
def depends(
    on: type[T], *, url: str | None = None, deployment: str | None = None, cluster: str | None = None
) -> Dependency[T]: ...
def depends(
    on: type[T] | None = None,
    *,
    url: str | None = None,
    deployment: str | None = None,
    cluster: str | None = None,
) -> Dependency[T] | Dependency[RemoteService]:
    """Declare a dependency on another service (``on``), in this worker, or at ``url`` over HTTP."""
    if deployment is not None or cluster is not None:
        raise NotImplementedError(
            "depends(deployment=..., cluster=...) names a BentoCloud deployment: use url="
        )
    if on is not None:
        get_spec(on)  # a clear TypeError for anything but a service class
    if on is None and url is None:
        raise ValueError("Must specify at least one of on, deployment or url")
    if on is None:
        return Dependency[RemoteService](None, url)
    return Dependency(on, url)


def dependencies_of(cls: type) -> list[Dependency[object]]:
    """The ``depends()`` attributes of ``cls`` and its bases."""
    seen: dict[str, Dependency[object]] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in klass.__dict__.items():
            if isinstance(value, Dependency):
                seen[attr] = value
    return list(seen.values())


# -- in the same worker ----------------------------------------------------------------------------


def _build_local(cls: type) -> object:
    from concurrent.futures import ThreadPoolExecutor

    for dep in dependencies_of(cls):
        dep.get()  # its own dependencies first
    instance = cls()
    spec = get_spec(cls)
    names = {attr for attr, _, _ in get_apis(cls)}
    executor = ThreadPoolExecutor(spec.threads, thread_name_prefix=f"asgiserve-{spec.name}")
    try:
        instance.to_async = ToAsync(instance, names, executor)
        instance.to_sync = ToSync(instance, names)
    except AttributeError:  # a class with __slots__: no wrappers
        pass
    return instance


class _Wrapper:
    def __init__(self, instance: object, names: set[str]) -> None:
        self._instance = instance
        self._names = names

    def _api(self, name: str) -> Callable[..., object]:
        if name not in self._names:
            raise AttributeError(f"{type(self._instance).__name__} has no api named {name!r}")
        fn: Callable[..., object] = getattr(self._instance, name)
        return fn


class ToAsync(_Wrapper):
    """``dep.to_async.api(...)``: every api as a coroutine; sync ones run in the dependency's thread pool."""

    def __init__(self, instance: object, names: set[str], executor: ThreadPoolExecutor) -> None:
        super().__init__(instance, names)
        self._executor = executor

    def __getattr__(self, name: str) -> Callable[..., object]:
        fn = self._api(name)
        if _is_async(fn):
            return fn
        executor = self._executor
        if inspect.isgeneratorfunction(fn):

            async def stream(*args: object, **kwargs: object) -> AsyncIterator[object]:
                import asyncio

                loop = asyncio.get_running_loop()
                it: Iterator[object] = fn(*args, **kwargs)
                done = object()
                while True:
                    item = await loop.run_in_executor(executor, next, it, done)
                    if item is done:
                        return
                    yield item

            return stream

        async def call(*args: object, **kwargs: object) -> object:
            import asyncio

            return await asyncio.get_running_loop().run_in_executor(
                executor, functools.partial(fn, *args, **kwargs)
            )

        return call


class ToSync(_Wrapper):
    """``dep.to_sync.api(...)``: every api as a blocking call, for sync code (a thread, not the loop)."""

    def __init__(self, instance: object, names: set[str]) -> None:
        super().__init__(instance, names)
        import asyncio

        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def __getattr__(self, name: str) -> Callable[..., object]:
        fn = self._api(name)
        if not inspect.iscoroutinefunction(fn):
            return fn
        owner = self

        def call(*args: object, **kwargs: object) -> object:
            import asyncio

            loop = owner._loop
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is not None:
                raise RuntimeError(f"to_sync.{name}() blocks: call it from a thread, or await the api itself")
            if loop is not None and loop.is_running():
                return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), loop).result()
            return asyncio.run(fn(*args, **kwargs))

        return call


# -- over HTTP -------------------------------------------------------------------------------------


class RemoteService:
    """A service at a URL, through asgiserve's clients (made on first use, in this worker)."""

    def __init__(self, url: str, on: type | None, token: str | None) -> None:
        self.url = url
        self.on = on
        self.token = token
        self._apis = {attr: (spec.name, _is_async(fn)) for attr, fn, spec in get_apis(on)} if on else {}
        self._sync: SyncHTTPClient | None = None
        self._async: AsyncHTTPClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RemoteService {self.url}>"

    @property
    def to_sync(self) -> SyncHTTPClient:
        """The blocking client (its first use waits until the service is ready and reads its schema)."""
        with self._lock:
            if self._sync is None:
                from .client import SyncHTTPClient

                self._sync = SyncHTTPClient(self.url, token=self.token)
            return self._sync

    @property
    def to_async(self) -> AsyncHTTPClient:
        """The asyncio client (it waits for the service and reads its schema on its first call)."""
        if self._async is None:
            from .client import AsyncHTTPClient

            self._async = AsyncHTTPClient(self.url, token=self.token)
        return self._async

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        if self.on is None:
            raise AttributeError(
                f"{name}: a dependency given by url alone does not know how its apis are declared; "
                "use .to_sync or .to_async, or give on=ServiceClass"
            )
        found = self._apis.get(name)
        if found is None:
            raise AttributeError(f"{self.on.__name__} has no api named {name!r}")
        api_name, is_async = found
        return getattr(self.to_async if is_async else self.to_sync, api_name)

    async def is_ready(self) -> bool:
        """Whether the remote service answers ``/readyz`` with 200 (soon)."""
        import asyncio

        try:
            return await asyncio.wait_for(self.to_async.is_ready(), _READY_TIMEOUT)
        except (asyncio.TimeoutError, OSError):
            return False

    async def close(self) -> None:
        """Close both clients."""
        client, self._async = self._async, None
        if client is not None:
            await client.close()
        sync, self._sync = self._sync, None
        if sync is not None:
            import asyncio

            await asyncio.get_running_loop().run_in_executor(None, sync.close)


# -- the serving app's side ------------------------------------------------------------------------


def _walk(cls: type, token: str | None, out: list[RemoteService], seen: set[int]) -> None:
    for dep in dependencies_of(cls):
        if id(dep) in seen:
            continue
        seen.add(id(dep))
        dep.token = token
        if dep.url is None and dep.on is not None:
            _walk(dep.on, token, out, seen)
        resolved = dep.get()
        if isinstance(resolved, RemoteService):
            out.append(resolved)


def start_dependencies(cls: type, token: str | None) -> list[RemoteService]:
    """Build ``cls``'s dependencies in this worker (before ``cls`` itself); its remote ones, for
    ``/readyz``. Call it from the event loop, so that ``to_sync`` reaches async apis on it."""
    out: list[RemoteService] = []
    _walk(cls, token, out, set())
    return out


async def stop_dependencies(remote: list[RemoteService]) -> None:
    """Close the clients of remote dependencies."""
    for r in remote:
        await r.close()
