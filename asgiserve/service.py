"""Declarations: ``service``, ``api``, ``asgi_app`` (``mount_asgi_app``) and ``get_current_service``.

Decorators only record metadata; nothing here touches the network or builds codecs. A decorated class stays
the same class object (so it can be instantiated and type-annotated as usual) with a ``ServiceSpec`` attached
under ``__asgiserve_service__`` (and BentoML's ``add_asgi_middleware`` as a class method); a decorated method
stays the same function with an ``APISpec`` attached. The ASGI app is built from that metadata once, by
``asgiserve.to_asgi``.

``@service`` takes every key BentoML's does; ``options.py`` checks them into the ``ServiceSpec``.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .options import ServiceSpec, check_positive, make_spec

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import ServiceOptions

__all__ = [
    "APISpec",
    "MountSpec",
    "ServiceSpec",
    "api",
    "asgi_app",
    "get_current_service",
    "get_spec",
    "mount_asgi_app",
    "service",
    "task",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., object])

_SERVICE_ATTR = "__asgiserve_service__"
_API_ATTR = "__asgiserve_api__"
_MOUNTS_ATTR = "__asgiserve_mounts__"
_ROUTE_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


@dataclass(frozen=True)
class APISpec:
    """What ``@api`` recorded about one inference method."""

    name: str
    route: str
    batchable: bool = False
    batch_dim: int | tuple[int, int] = 0
    max_batch_size: int = 100
    max_latency_ms: int = 60_000
    media_type: str | None = None
    is_task: bool = False  # ``@task``: also served at ``{route}/submit``, ``/status``, ``/get``, ...
    input_spec: type | None = None  # a pydantic model whose fields are the body's keys (BentoML's)
    output_spec: type | None = None  # a pydantic model the result is validated and written as


@dataclass(frozen=True)
class MountSpec:
    """One ``@asgi_app`` declaration: an ASGI app served under ``path``."""

    app: Callable[..., Awaitable[object]]
    path: str
    name: str


def _add_asgi_middleware(cls: type, middleware_cls: Callable[..., object], /, **options: object) -> None:
    """Wrap the whole app in ``middleware_cls(app, **options)``; the first added is the outermost."""
    if not callable(middleware_cls):
        raise TypeError(f"add_asgi_middleware needs an ASGI middleware class, got {middleware_cls!r}")
    get_spec(cls).middlewares.append((middleware_cls, dict(options)))


@overload
def service(cls: type[T], /) -> type[T]: ...
@overload
def service(cls: None = None, /, **config: Unpack[ServiceOptions]) -> Callable[[type[T]], type[T]]: ...
def service(
    cls: type[T] | None = None, /, **config: Unpack[ServiceOptions]
) -> type[T] | Callable[[type[T]], type[T]]:
    """Mark a class as a service: ``@service`` or ``@service(traffic={...}, threads=..., workers=...)``."""

    def wrap(klass: type[T]) -> type[T]:
        if not inspect.isclass(klass):
            raise TypeError(f"@service decorates a class, got {klass!r}")
        setattr(klass, _SERVICE_ATTR, make_spec(klass, config))
        if "add_asgi_middleware" not in klass.__dict__:
            klass.add_asgi_middleware = classmethod(_add_asgi_middleware)  # type: ignore[attr-defined]
        return klass

    if cls is not None:
        if config:
            raise TypeError("@service takes either a class or keyword options, not both")
        return wrap(cls)
    return wrap


@overload
def api(func: F, /) -> F: ...
@overload
def api(
    func: None = None,
    /,
    *,
    route: str | None = None,
    name: str | None = None,
    batchable: bool = False,
    batch_dim: int | tuple[int, int] = 0,
    max_batch_size: int = 100,
    max_latency_ms: int = 60_000,
    media_type: str | None = None,
    input_spec: type | None = None,
    output_spec: type | None = None,
) -> Callable[[F], F]: ...
def api(
    func: F | None = None,
    /,
    *,
    route: str | None = None,
    name: str | None = None,
    batchable: bool = False,
    batch_dim: int | tuple[int, int] = 0,
    max_batch_size: int = 100,
    max_latency_ms: int = 60_000,
    media_type: str | None = None,
    input_spec: type | None = None,
    output_spec: type | None = None,
) -> F | Callable[[F], F]:
    """Mark a method as an inference api served at ``POST {route}`` (default ``/{method name}``)."""
    if name is not None and (not isinstance(name, str) or not name.isidentifier()):
        raise ValueError(f"api name must be a Python identifier, got {name!r}")
    if route is not None and (not isinstance(route, str) or not _ROUTE_RE.match(route)):
        raise ValueError(f"api route must be a path starting with '/', got {route!r}")
    if not isinstance(batchable, bool):
        raise TypeError(f"batchable must be a bool, got {batchable!r}")
    if isinstance(batch_dim, tuple):
        if len(batch_dim) != 2 or not all(isinstance(d, int) and d >= 0 for d in batch_dim):
            raise ValueError(f"batch_dim must be an int or a pair of ints >= 0, got {batch_dim!r}")
    elif isinstance(batch_dim, bool) or not isinstance(batch_dim, int) or batch_dim < 0:
        raise ValueError(f"batch_dim must be an int >= 0, got {batch_dim!r}")
    check_positive("max_batch_size", max_batch_size)
    check_positive("max_latency_ms", max_latency_ms, allow_float=True)
    if media_type is not None and (not isinstance(media_type, str) or "/" not in media_type):
        raise ValueError(f"media_type must look like 'type/subtype', got {media_type!r}")
    for what, model in (("input_spec", input_spec), ("output_spec", output_spec)):
        if model is not None and not inspect.isclass(model):
            raise TypeError(f"{what} must be a pydantic model class, got {model!r}")

    def wrap(fn: F) -> F:
        if not callable(fn) or not hasattr(fn, "__name__"):
            raise TypeError(f"@api decorates a function, got {fn!r}")
        params = list(inspect.signature(fn).parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            raise TypeError(f"@api method {fn.__qualname__} must take 'self' as its first parameter")
        for p in params[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
                raise TypeError(f"@api method {fn.__qualname__}: parameter {p.name!r} must be nameable")
        api_name = name or fn.__name__
        spec = APISpec(
            name=api_name,
            route=route or f"/{api_name}",
            batchable=batchable,
            batch_dim=batch_dim,
            max_batch_size=max_batch_size,
            max_latency_ms=max_latency_ms,
            media_type=media_type,
            input_spec=input_spec,
            output_spec=output_spec,
        )
        setattr(fn, _API_ATTR, spec)
        return fn

    if func is not None:
        return wrap(func)
    return wrap


_STREAM_NAMES = frozenset(
    {"Generator", "Iterator", "Iterable", "AsyncGenerator", "AsyncIterator", "AsyncIterable"}
)


def _returns_stream(fn: Callable[..., object]) -> bool:
    """Whether ``fn`` streams: a generator function, or one annotated to return an iterator."""
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    ret = inspect.signature(fn).return_annotation
    # Annotations may be strings (``from __future__ import annotations``): the name before "[" is enough.
    text = ret if isinstance(ret, str) else getattr(ret, "__name__", None) or repr(ret)
    return text.strip("\"' ").split("[")[0].rsplit(".", 1)[-1] in _STREAM_NAMES


@overload
def task(func: F, /) -> F: ...
@overload
def task(
    func: None = None,
    /,
    *,
    route: str | None = None,
    name: str | None = None,
    batchable: bool = False,
    batch_dim: int | tuple[int, int] = 0,
    max_batch_size: int = 100,
    max_latency_ms: int = 60_000,
    media_type: str | None = None,
) -> Callable[[F], F]: ...
def task(
    func: F | None = None,
    /,
    *,
    route: str | None = None,
    name: str | None = None,
    batchable: bool = False,
    batch_dim: int | tuple[int, int] = 0,
    max_batch_size: int = 100,
    max_latency_ms: int = 60_000,
    media_type: str | None = None,
) -> F | Callable[[F], F]:
    """Mark a method as a task: an api (``POST {route}``) that can also be submitted and fetched later."""
    make = api(
        route=route,
        name=name,
        batchable=batchable,
        batch_dim=batch_dim,
        max_batch_size=max_batch_size,
        max_latency_ms=max_latency_ms,
        media_type=media_type,
    )

    def wrap(fn: F) -> F:
        if callable(fn) and _returns_stream(fn):
            raise ValueError("Async task cannot return a stream.")
        marked = make(fn)
        setattr(marked, _API_ATTR, replace(getattr(marked, _API_ATTR), is_task=True))
        return marked

    if func is not None:
        return wrap(func)
    return wrap


def asgi_app(
    app: Callable[..., Awaitable[object]], path: str = "/", *, name: str | None = None
) -> Callable[[type[T]], type[T]]:
    """Serve an ASGI 3 ``app`` under ``path`` beside the service's apis (BentoML's mount decorator)."""
    if inspect.isclass(app) and hasattr(app, _SERVICE_ATTR):
        raise TypeError(
            f"asgi_app(app, path=...) mounts an ASGI app; to build the app serving {app.__name__}, "
            f"use asgiserve.to_asgi({app.__name__})"
        )
    if not callable(app):
        raise TypeError(f"asgi_app needs an ASGI application, got {app!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"mount path must start with '/', got {path!r}")
    norm = path.rstrip("/") or "/"

    def wrap(cls: type[T]) -> type[T]:
        # A list of this class's own, so a subclass mounting more does not alter its base.
        mounts = list(cls.__dict__.get(_MOUNTS_ATTR, ()))
        for m in mounts:
            if m.path == norm:
                raise ValueError(f"{cls.__name__} already mounts an app at {norm!r}")
        mounts.append(MountSpec(app=app, path=norm, name=name or getattr(app, "__name__", None) or norm))
        setattr(cls, _MOUNTS_ATTR, mounts)
        return cls

    return wrap


def mount_asgi_app(
    app: Callable[..., Awaitable[object]], *, path: str = "/", name: str | None = None
) -> Callable[[type[T]], type[T]]:
    """Deprecated alias of ``asgi_app``, as in BentoML (a ``DeprecationWarning``, hidden by default)."""
    warnings.warn("mount_asgi_app is deprecated: use asgiserve.asgi_app", DeprecationWarning, stacklevel=2)
    return asgi_app(app, path, name=name)


def get_spec(cls: object) -> ServiceSpec:
    """The ``ServiceSpec`` of a class decorated with ``@service``."""
    spec = getattr(cls, _SERVICE_ATTR, None)
    if not isinstance(spec, ServiceSpec):
        raise TypeError(f"{cls!r} is not a service: decorate it with @asgiserve.service")
    return spec


def get_apis(cls: type) -> list[tuple[str, Callable[..., object], APISpec]]:
    """The ``(attribute, function, spec)`` of every ``@api`` method of ``cls``, in definition order."""
    seen: dict[str, tuple[str, Callable[..., object], APISpec]] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in klass.__dict__.items():
            spec = getattr(value, _API_ATTR, None)
            if isinstance(spec, APISpec):
                seen[attr] = (attr, value, spec)
            elif attr in seen:
                del seen[attr]
    return list(seen.values())


def get_mounts(cls: type) -> list[MountSpec]:
    """Every ``@asgi_app`` of ``cls`` and its bases."""
    out: list[MountSpec] = []
    for klass in reversed(cls.__mro__):
        out.extend(klass.__dict__.get(_MOUNTS_ATTR, ()))
    return out


_current: object = None


def _set_current(instance: object) -> None:
    global _current
    _current = instance


# Any rather than object: the instance is of the user's own class, which only the caller knows.
def get_current_service() -> Any:
    """This worker's live service instance (available once its ``__init__`` has run)."""
    if _current is None:
        raise RuntimeError(
            "no service instance yet: get_current_service() works once the server has started the service"
        )
    return _current
