"""The router as data: an exact-path table for apis and infra routes, then mounts by longest prefix.

Built once at startup. Matching is one dict lookup for the common case; mounts are scanned only when the
exact table misses, longest prefix first, and match at a ``/`` boundary (``/api`` serves ``/api`` and
``/api/x`` but not ``/apiary``). A mount at ``/`` catches whatever is left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .types import ASGIApp, Receive, Scope, Send

__all__ = ["Handler", "Mount", "Route", "Router"]

# What a route or mount runs for a request: an ASGI callable (what it returns is not used).
Handler = Callable[[Scope, Receive, Send], Awaitable[object]]


async def _no_handler(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("this mount has no handler: build the app with asgiserve.to_asgi")


class Route:
    """An exact path with its allowed methods and handler."""

    __slots__ = ("allow", "endpoint", "handler", "methods")

    def __init__(self, path: str, methods: tuple[str, ...], handler: Handler) -> None:
        self.endpoint = path
        self.methods = frozenset(methods)
        self.allow = ", ".join(methods).encode()
        self.handler = handler


class Mount:
    """An ASGI app served under ``prefix``; the child scope's ``root_path`` is extended by the prefix."""

    __slots__ = ("app", "endpoint", "handler", "name", "prefix", "state")

    def __init__(self, prefix: str, app: ASGIApp, name: str) -> None:
        self.prefix = "" if prefix == "/" else prefix
        self.endpoint = prefix  # the metrics label
        self.app = app
        self.name = name
        # The app's own lifespan state (ASGI lifespan "state"), copied into each of its request scopes.
        self.state: dict[str, object] = {}
        self.handler: Handler = _no_handler  # set by the app that serves this router

    def matches(self, path: str) -> bool:
        """Whether ``path`` (relative to the parent's root_path) falls under this mount."""
        p = self.prefix
        return not p or path == p or (path.startswith(p) and path[len(p)] == "/")

    def child_scope(self, scope: Scope) -> Scope:
        """Turn ``scope`` into the mounted app's: ``path`` unchanged, ``root_path`` + prefix (ASGI convention).

        The scope is updated in place, as Starlette's own Mount does: it belongs to this request alone,
        and copying it would cost a dict per request.
        """
        if self.prefix:
            root = scope.get("root_path")
            scope["root_path"] = root + self.prefix if root else self.prefix
        if self.state:
            scope["state"] = self.state.copy()
        return scope


class Router:
    """Exact routes first, then mounts by longest prefix."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.mounts: list[Mount] = []

    def add_route(self, path: str, methods: tuple[str, ...], handler: Handler) -> None:
        """Register an exact route; a path may be registered once."""
        if path in self.routes:
            raise ValueError(f"two routes for {path!r}")
        self.routes[path] = Route(path, methods, handler)

    def add_mount(self, prefix: str, app: ASGIApp, name: str) -> Mount:
        """Register a mounted app; longer prefixes are tried first."""
        norm = "" if prefix == "/" else prefix
        if any(m.prefix == norm for m in self.mounts):
            raise ValueError(f"two apps mounted at {prefix!r}")
        mount = Mount(prefix, app, name)
        self.mounts.append(mount)
        self.mounts.sort(key=lambda m: len(m.prefix), reverse=True)
        return mount

    def match_mount(self, path: str) -> Mount | None:
        """The mount serving ``path``, if any."""
        for mount in self.mounts:
            if mount.matches(path):
                return mount
        return None
