"""Mounted ASGI apps: FastAPI ``self`` routes, the lifespan protocol, and OpenAPI paths for ``/docs.json``.

Everything here runs once, at app build time or at startup/shutdown; nothing is on the request path.
FastAPI is never imported by this module: an app can only be a FastAPI instance if ``fastapi`` is already
in ``sys.modules``, so that is looked up instead. Lifespans are driven by ``server.lifespan.Lifespan``, with
the rules it states for the served app (an app that does not speak lifespan is skipped, with a debug note).
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from .server.lifespan import Lifespan, LifespanFailure
from .service import get_current_service

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.routing import APIRoute, APIRouter
    from starlette.routing import BaseRoute

    from .routing import Mount

__all__ = ["MountStartupError", "MountedApps", "bind_self_routes", "merge_openapi", "service_dependency"]

logger = logging.getLogger("asgiserve")

# An OpenAPI document as JSON: its values differ by key, as the OpenAPI spec defines them.
OpenAPIDoc = dict[str, Any]
_SCHEMAS = "#/components/schemas/"


class MountStartupError(RuntimeError):
    """A mounted app answered ``lifespan.startup.failed`` (or raised after taking the startup message)."""


async def service_dependency() -> object:
    """The live service instance, as a FastAPI dependency (async, so FastAPI needs no thread for it)."""
    return get_current_service()


# -- FastAPI ``self`` routes ------------------------------------------------------------------------------


def _fastapi() -> tuple[type[FastAPI], type[APIRouter], type[APIRoute]] | None:
    """FastAPI's app, router and route classes when ``fastapi`` was imported (by the app's own module)."""
    fastapi = sys.modules.get("fastapi")
    if fastapi is None:
        return None
    return fastapi.FastAPI, fastapi.routing.APIRouter, fastapi.routing.APIRoute


def _is_fastapi(app: object) -> TypeGuard[FastAPI]:
    classes = _fastapi()
    return classes is not None and isinstance(app, classes[0])


def _owned_by(func: object, owners: set[str]) -> bool:
    """Whether ``func`` was defined in the body of one of the classes named in ``owners``."""
    qualname = getattr(func, "__qualname__", "")
    owner, dot, _ = qualname.rpartition(".")
    return bool(dot) and owner in owners


def _rewrite_signature(func: Callable[..., object], depends: object) -> bool:
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
    func.__signature__ = sig.replace(parameters=new)  # type: ignore[attr-defined]  # read by inspect.signature
    return True


def _reanalyse(route: APIRoute) -> None:
    """Run the route's constructor again with its own settings, so FastAPI reads the new signature."""
    kwargs: dict[str, object] = {}
    for name, p in inspect.signature(type(route).__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or not hasattr(route, name):
            continue
        kwargs[name] = getattr(route, name)
    if kwargs.get("response_model") is None:
        kwargs.pop("response_model", None)  # let FastAPI infer it from the return annotation again
    init: Callable[..., None] = type(route).__init__  # each setting goes back to the parameter it came from
    init(route, **kwargs)


def _walk_routes(routes: Sequence[BaseRoute], visit: Callable[[APIRoute], bool], seen: set[int]) -> bool:
    """Call ``visit`` on every FastAPI route reachable from ``routes``; True if any changed."""
    classes = _fastapi()
    assert classes is not None  # only called for a FastAPI app
    app_cls, router_cls, route_cls = classes
    changed = False
    for route in routes:
        if isinstance(route, route_cls):
            changed |= visit(route)
            continue
        # An included router kept by reference (newer FastAPI) or a mounted FastAPI app or APIRouter.
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if isinstance(inner, app_cls):
            inner = inner.router
        if isinstance(inner, router_cls) and id(inner) not in seen:
            seen.add(id(inner))
            if _walk_routes(inner.routes, visit, seen):
                changed = True
                mark = getattr(inner, "_mark_routes_changed", None)
                if mark is not None:
                    mark()  # drop FastAPI's cached views of the included routes
    return changed


def bind_self_routes(cls: type, app: object) -> int:
    """Give routes defined in ``cls`` (or a base) with a first parameter ``self`` the live service.

    Returns how many routes were rewritten; 0 (and no import) when ``app`` is not a FastAPI app.
    """
    if not _is_fastapi(app):
        return 0
    depends = sys.modules["fastapi"].Depends(service_dependency)
    owners = {klass.__qualname__ for klass in cls.__mro__ if klass is not object}
    count = 0

    def visit(route: APIRoute) -> bool:
        nonlocal count
        endpoint = route.endpoint
        if getattr(route, "_asgiserve_bound", False) or not _owned_by(endpoint, owners):
            return False
        first = next(iter(inspect.signature(endpoint).parameters), None)
        if first != "self":
            return False
        _rewrite_signature(endpoint, depends)
        _reanalyse(route)
        route._asgiserve_bound = True  # type: ignore[attr-defined]  # routes are unhashable: marked instead
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


def _where(mount: Mount) -> str:
    path = mount.prefix or "/"
    named = f" {mount.name!r}" if mount.name.rstrip("/") != mount.prefix else ""
    return f"mounted app{named} at {path}"


class MountedApps:
    """The mounted apps of one service, in the order they were mounted: started in it, stopped in reverse."""

    def __init__(self, cls: type, mounts: list[Mount]) -> None:
        self.mounts = mounts
        self.started: list[Lifespan] = []
        for mount in mounts:
            bind_self_routes(cls, mount.app)

    async def startup(self) -> None:
        """Run every mounted app's lifespan startup; on a failure stop the ones already started, then raise.

        Raises ``MountStartupError`` naming the app that failed.
        """
        for mount in self.mounts:
            life = Lifespan(mount.app, mount.state, _where(mount), logging.DEBUG)
            try:
                supported = await life.start()
            except BaseException as exc:
                try:
                    await self.shutdown()  # the apps started so far; their errors are logged
                except Exception:
                    pass
                if isinstance(exc, LifespanFailure):
                    raise MountStartupError(str(exc)) from exc
                raise
            if supported:
                self.started.append(life)

    async def shutdown(self) -> None:
        """Shut the started apps down in reverse order; every one is asked even if an earlier one fails."""
        errors: list[str] = []
        while self.started:
            life = self.started.pop()
            try:
                await life.stop()
            except Exception as exc:
                logger.error("%s", exc)
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))


# -- OpenAPI ----------------------------------------------------------------------------------------------


def _fastapi_openapi(app: object) -> OpenAPIDoc | None:
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


def _replace_refs(node: object, renames: dict[str, str]) -> object:
    if isinstance(node, dict):
        return _renamed(node, renames)
    if isinstance(node, list):
        return [_replace_refs(v, renames) for v in node]
    return node


def _renamed(node: dict[str, object], renames: dict[str, str]) -> dict[str, object]:
    """A copy of a JSON object with its ``$ref`` values renamed, at every depth."""
    return {
        k: (renames.get(v, v) if k == "$ref" and isinstance(v, str) else _replace_refs(v, renames))
        for k, v in node.items()
    }


def merge_openapi(doc: OpenAPIDoc, mounts: list[Mount]) -> OpenAPIDoc:
    """Add the paths (under their prefix) and components of mounted FastAPI apps to ``doc``, in place."""
    components: OpenAPIDoc = doc.setdefault("components", {})
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
            item = _renamed(item, renames)
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
