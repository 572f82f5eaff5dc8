"""Mounted ASGI apps: FastAPI ``self`` routes, the lifespan protocol, and OpenAPI paths for ``/docs.json``.

Everything here runs once, at app build time or at startup/shutdown; nothing is on the request path.
FastAPI is never imported by this module: an app can only be a FastAPI instance if ``fastapi`` is already
in ``sys.modules``, so that is looked up instead. Lifespans follow the ASGI lifespan spec 2.0: an app that
does not take the startup message, or returns without answering, does not support it and is skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import sys
from typing import TYPE_CHECKING, Any

from .service import get_current_service

if TYPE_CHECKING:
    from .routing import Mount

__all__ = ["MountStartupError", "MountedApps", "bind_self_routes", "merge_openapi", "service_dependency"]

logger = logging.getLogger("asgiserve")

_LIFESPAN_ASGI = {"version": "3.0", "spec_version": "2.0"}
_DONE = "asgiserve.lifespan.returned"
_SCHEMAS = "#/components/schemas/"


class MountStartupError(RuntimeError):
    """A mounted app answered ``lifespan.startup.failed`` (or raised after taking the startup message)."""


async def service_dependency() -> Any:
    """The live service instance, as a FastAPI dependency (async, so FastAPI needs no thread for it)."""
    return get_current_service()


# -- FastAPI ``self`` routes ------------------------------------------------------------------------------


def _fastapi() -> Any:
    return sys.modules.get("fastapi")


def _is_fastapi(app: Any) -> bool:
    fastapi = _fastapi()
    return fastapi is not None and isinstance(app, fastapi.FastAPI)


def _owned_by(func: Any, owners: set[str]) -> bool:
    """Whether ``func`` was defined in the body of one of the classes named in ``owners``."""
    qualname = getattr(func, "__qualname__", "")
    owner, dot, _ = qualname.rpartition(".")
    return bool(dot) and owner in owners


def _rewrite_signature(func: Any, depends: Any) -> bool:
    """Make ``self`` a keyword parameter defaulting to ``depends``; False when there is nothing to do."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    if not params or params[0].name != "self":
        return False
    if params[0].default is not inspect.Parameter.empty:
        return False  # rewritten already (the app was built twice), or given a default by its author
    # FastAPI calls endpoints with keyword arguments only, so every parameter can become keyword-only,
    # which lets ``self`` carry a default before parameters that have none.
    new = [params[0].replace(kind=inspect.Parameter.KEYWORD_ONLY, default=depends)]
    for p in params[1:]:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            p = p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        new.append(p)
    func.__signature__ = sig.replace(parameters=new)
    return True


def _reanalyse(route: Any) -> None:
    """Run the route's constructor again with its own settings, so FastAPI reads the new signature."""
    kwargs: dict[str, Any] = {}
    for name, p in inspect.signature(type(route).__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or not hasattr(route, name):
            continue
        kwargs[name] = getattr(route, name)
    if kwargs.get("response_model") is None:
        kwargs.pop("response_model", None)  # let FastAPI infer it from the return annotation again
    route.__init__(**kwargs)


def _walk_routes(routes: list[Any], visit: Any, seen: set[int]) -> bool:
    """Call ``visit`` on every FastAPI route reachable from ``routes``; True if any changed."""
    fastapi = _fastapi()
    changed = False
    for route in routes:
        if isinstance(route, fastapi.routing.APIRoute):
            changed |= visit(route)
            continue
        # An included router kept by reference (newer FastAPI) or a mounted FastAPI app or APIRouter.
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if isinstance(inner, fastapi.FastAPI):
            inner = inner.router
        if isinstance(inner, fastapi.routing.APIRouter) and id(inner) not in seen:
            seen.add(id(inner))
            if _walk_routes(inner.routes, visit, seen):
                changed = True
                mark = getattr(inner, "_mark_routes_changed", None)
                if mark is not None:
                    mark()  # drop FastAPI's cached views of the included routes
    return changed


def bind_self_routes(cls: type, app: Any) -> int:
    """Give routes defined in ``cls`` (or a base) with a first parameter ``self`` the live service.

    Returns how many routes were rewritten; 0 (and no import) when ``app`` is not a FastAPI app.
    """
    if not _is_fastapi(app):
        return 0
    depends = _fastapi().Depends(service_dependency)
    owners = {klass.__qualname__ for klass in cls.__mro__ if klass is not object}
    count = 0

    def visit(route: Any) -> bool:
        nonlocal count
        endpoint = route.endpoint
        if getattr(route, "_asgiserve_bound", False) or not _owned_by(endpoint, owners):
            return False
        first = next(iter(inspect.signature(endpoint).parameters), None)
        if first != "self":
            return False
        _rewrite_signature(endpoint, depends)
        _reanalyse(route)
        route._asgiserve_bound = True
        count += 1
        return True

    root = app.router
    if _walk_routes(root.routes, visit, {id(root)}):
        mark = getattr(root, "_mark_routes_changed", None)
        if mark is not None:
            mark()
        app.openapi_schema = None  # a document built before the rewrite would list ``self``
    return count


# -- lifespan ---------------------------------------------------------------------------------------------


class _Lifespan:
    """Drives the ASGI lifespan protocol of one mounted app from a task of its own."""

    def __init__(self, mount: Mount) -> None:
        self.mount = mount
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.received = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        path = self.mount.prefix or "/"
        named = f" {self.mount.name!r}" if self.mount.name.rstrip("/") != self.mount.prefix else ""
        return f"mounted app{named} at {path}"

    async def _receive(self) -> dict[str, Any]:
        self.received += 1
        return await self.inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        await self.outbox.put(message)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _LIFESPAN_ASGI, "state": self.mount.state}
        error: BaseException | None = None
        try:
            await self.mount.app(scope, self._receive, self._send)
        except BaseException as exc:
            error = exc
        await self.outbox.put({"type": _DONE, "error": error})

    async def startup(self) -> bool:
        """Start the app; False when it does not speak lifespan. Raises ``MountStartupError`` on failure."""
        self.task = asyncio.create_task(self._run(), name=f"lifespan {self.mount.prefix or '/'}")
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            return True
        if kind == "lifespan.startup.failed":
            raise MountStartupError(f"{self.where} failed to start: {message.get('message', '')}")
        error = message.get("error") if kind == _DONE else None
        if kind == _DONE and error is not None and self.received:
            # It took the startup message and then raised: a failed startup, not a missing feature.
            raise MountStartupError(f"{self.where} failed to start: {type(error).__name__}: {error}")
        logger.debug("%s does not support the lifespan protocol (%s); skipped", self.where, error or kind)
        return False

    async def shutdown(self) -> None:
        """Ask the app to shut down and wait until it did; raises when it reports a failure."""
        await self.inbox.put({"type": "lifespan.shutdown"})
        message = await self.outbox.get()
        task, self.task = self.task, None
        if message["type"] == "lifespan.shutdown.complete" and task is not None:
            await task
        if message["type"] == "lifespan.shutdown.failed":
            raise RuntimeError(f"{self.where} failed to shut down: {message.get('message', '')}")
        if message["type"] == _DONE and message["error"] is not None:
            error = message["error"]
            raise RuntimeError(f"{self.where} failed to shut down: {type(error).__name__}: {error}")


class MountedApps:
    """The mounted apps of one service, in the order they were mounted: started in it, stopped in reverse."""

    def __init__(self, cls: type, mounts: list[Mount]) -> None:
        self.mounts = mounts
        self.started: list[_Lifespan] = []
        for mount in mounts:
            bind_self_routes(cls, mount.app)

    async def startup(self) -> None:
        """Run every mounted app's lifespan startup; on a failure stop the ones already started, then raise."""
        for mount in self.mounts:
            life = _Lifespan(mount)
            try:
                supported = await life.startup()
            except BaseException:
                try:
                    await self.shutdown()  # the apps started so far; their errors are logged
                except Exception:
                    pass
                raise
            if supported:
                self.started.append(life)

    async def shutdown(self) -> None:
        """Shut the started apps down in reverse order; every one is asked even if an earlier one fails."""
        errors: list[str] = []
        while self.started:
            life = self.started.pop()
            try:
                await life.shutdown()
            except Exception as exc:
                logger.error("%s", exc)
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))


# -- OpenAPI ----------------------------------------------------------------------------------------------


def _fastapi_openapi(app: Any) -> dict[str, Any] | None:
    if not _is_fastapi(app):
        return None
    cached = app.openapi_schema
    try:
        return dict(app.openapi())
    except Exception:
        logger.warning("could not build the OpenAPI document of mounted app %r", app, exc_info=True)
        return None
    finally:
        # FastAPI adds the request's root_path to ``servers`` on the first /openapi.json it serves; a
        # document cached now, without it, would point Swagger UI at the wrong URLs under the prefix.
        app.openapi_schema = cached


def _replace_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (renames.get(v, v) if k == "$ref" and isinstance(v, str) else _replace_refs(v, renames))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_replace_refs(v, renames) for v in node]
    return node


def merge_openapi(doc: dict[str, Any], mounts: list[Mount]) -> dict[str, Any]:
    """Add the paths (under their prefix) and components of mounted FastAPI apps to ``doc``, in place."""
    components: dict[str, Any] = doc.setdefault("components", {})
    op_ids = {op.get("operationId") for item in doc["paths"].values() for op in item.values()}
    tag_names = {t["name"] for t in doc.get("tags", [])}
    for mount in mounts:
        sub = _fastapi_openapi(mount.app)
        if not sub:
            continue
        label = re.sub(r"\W", "_", mount.name).strip("_") or "mounted"
        renames: dict[str, str] = {}
        schemas = components.setdefault("schemas", {})
        sub_components = sub.get("components", {})
        for key, value in sub_components.get("schemas", {}).items():
            if key in schemas and schemas[key] != value:
                renames[f"{_SCHEMAS}{key}"] = f"{_SCHEMAS}{label}_{key}"
        for section, entries in sub_components.items():
            target = components.setdefault(section, {})
            for key, value in entries.items():
                new = renames.get(f"{_SCHEMAS}{key}", key).rsplit("/", 1)[-1] if section == "schemas" else key
                target.setdefault(new, _replace_refs(value, renames))
        for path, item in sub.get("paths", {}).items():
            full = mount.prefix + path
            if full in doc["paths"]:
                continue  # the service's own route wins, as it does when routing
            item = _replace_refs(item, renames)
            for op in item.values():
                if isinstance(op, dict) and op.get("operationId") in op_ids:
                    op["operationId"] = f"{label}_{op['operationId']}"
                if isinstance(op, dict):
                    op_ids.add(op.get("operationId"))
            doc["paths"][full] = item
        for tag in sub.get("tags", []):
            if tag.get("name") not in tag_names:
                doc.setdefault("tags", []).append(tag)
                tag_names.add(tag.get("name"))
    return doc
