"""The ASGI application for one service: dispatch, traffic rules, infra routes and lifespan.

``ServiceApp`` is a plain ASGI 3 callable, so any ASGI server can run it. Per request it does one dict
lookup for the route, a counter check for ``max_concurrency``, and hands off to the api handler or the
mounted app; everything else (route table, codecs, schema documents) is prepared in ``__init__``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import msgspec

from .codec import JSON_CT, TEXT_CT
from .errors import origin
from .handlers import APIHandler
from .limits import DEFAULT_LIMITS
from .metrics import Metrics
from .mount import MountedApps, merge_openapi
from .responses import error_body, send_body, send_error
from .routing import Handler, Mount, Router
from .schema import DocsPage, mount_docs, openapi, service_schema
from .service import _set_current, get_apis, get_mounts, get_spec
from .traffic import Gate
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ServiceApp", "asgi_app"]

logger = logging.getLogger("asgiserve")

_OK = b"ok\n"
_METRICS_CT = b"text/plain; version=0.0.4; charset=utf-8"
_HTML_CT = b"text/html; charset=utf-8"


class ServiceApp:
    """The ASGI app serving one ``@service`` class: its apis, infra routes and mounted apps."""

    def __init__(
        self,
        cls: type,
        *,
        api_token: str | None = None,
        allow_private_urls: bool | None = None,
        max_body_size: int | None = None,
    ) -> None:
        spec = get_spec(cls)
        self.cls = cls
        self.spec = spec
        self.name = spec.name
        if allow_private_urls is None:
            allow_private_urls = os.environ.get("ASGISERVE_ALLOW_PRIVATE_URLS", "") in ("1", "true", "yes")
        if max_body_size is None:
            max_body_size = int(os.environ.get("ASGISERVE_MAX_BODY_SIZE", DEFAULT_LIMITS.max_body_size))
        self.instance: object = None
        self.metrics = Metrics(spec.name)
        # The body limit is the gate's too, so that it holds under any ASGI server, not only asgiserve's own.
        self.gate = gate = Gate(
            self.metrics,
            timeout=spec.timeout,
            max_concurrency=spec.max_concurrency,
            token=api_token,
            max_body=max_body_size,
        )
        self.executor = ThreadPoolExecutor(spec.threads, thread_name_prefix="asgiserve-api")

        # File inputs given as URLs may point at private, loopback or link-local hosts only when allowed.
        self.handlers = [
            APIHandler(
                attr, func, aspec, gate=gate, executor=self.executor, allow_private_urls=allow_private_urls
            )
            for attr, func, aspec in get_apis(cls)
        ]
        self.router = router = Router()
        for h in self.handlers:
            router.add_route(h.route, ("POST",), h)
        infra: dict[str, Handler] = {
            "/livez": self._livez,
            "/healthz": self._livez,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
            "/schema.json": self._schema_json,
            "/docs.json": self._docs_json,
        }
        self.mount_specs = get_mounts(cls)
        if not any(m.path == "/" for m in self.mount_specs):
            infra["/"] = self._docs_page
        for path, handler in infra.items():
            router.add_route(path, ("GET", "HEAD"), handler)
        # Declared with a loose type, so that any framework's app passes: it is an ASGI 3 callable.
        mounts = [router.add_mount(m.path, cast(ASGIApp, m.app), m.name) for m in self.mount_specs]
        for mount in mounts:
            mount.handler = self._mount_caller(mount)
        self.mounted = MountedApps(cls, mounts)
        self.routes = router.routes

        mounted = [(m.path, m.name, mount_docs(m.path, m.app)) for m in self.mount_specs]
        self.schema = service_schema(self.name, self.handlers, mounted)
        self.openapi = merge_openapi(openapi(self.name, cls.__doc__, self.handlers), mounts)
        self._schema_bytes = msgspec.json.encode(self.schema)
        self._docs_bytes = msgspec.json.encode(self.openapi)
        self._page = DocsPage()

    # -- dispatch -------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 entry point."""
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root) :] or "/"
            route = self.routes.get(path)
            if route is not None:
                if scope["method"] in route.methods:
                    await route.handler(scope, receive, send)
                else:
                    await send_error(
                        send, 405, f"Method {scope['method']} not allowed", None, [(b"allow", route.allow)]
                    )
                return
            mount = self.router.match_mount(path)
            if mount is not None:
                await mount.handler(scope, receive, send)
            else:
                await send_error(send, 404, f"Not found: {path}")
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif kind == "websocket":
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root) :] or "/"
            mount = self.router.match_mount(path) if path not in self.routes else None
            if mount is None or self.gate.refuse(scope["headers"]) is not None:
                # Closing before accepting makes the server answer the handshake with 403.
                await send({"type": "websocket.close", "code": 1008 if mount is not None else 1000})
            else:
                await mount.app(mount.child_scope(scope), receive, send)
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    def direct_handler(self, path: str) -> APIHandler | None:
        """The api a server may call directly (``types.DirectHandler``) for ``POST path``.

        Not for streams and file outputs, which need ASGI messages to go out piece by piece.
        """
        route = self.routes.get(path)
        handler = route.handler if route is not None else None
        if isinstance(handler, APIHandler) and handler.whole:
            return handler
        return None

    def _mount_caller(self, mount: Mount) -> Handler:
        """Build, once per mount, the handler calling its app under the gate; the deadline ends when its
        response starts."""
        app = mount.app
        child_scope = mount.child_scope
        where = mount.prefix or "/"
        gate = self.gate

        async def run(scope: Scope, receive: Receive, send: Send) -> int:
            task = asyncio.current_task()
            status = 0

            # A plain function handing back send's awaitable: no extra coroutine per message.
            def watch(message: Message) -> Awaitable[None]:
                nonlocal status
                if not status and message["type"] == "http.response.start":
                    gate.response_started(task)
                    status = message["status"]
                return send(message)

            try:
                await app(child_scope(scope), receive, watch)
            except Exception:
                if status:
                    raise
                logger.exception("mounted app at %s raised", where)
                await send_error(send, 500, "Internal Server Error")
                return 500
            if not status:
                logger.error("mounted app at %s returned without a response", where)
                await send_error(send, 500, "Internal Server Error")
                return 500
            return status

        async def call(scope: Scope, receive: Receive, send: Send) -> None:
            await gate.guard(mount.endpoint, scope["headers"], send, run, scope, receive, send)

        return call

    # -- infra routes ---------------------------------------------------------------------------------

    async def _livez(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_body(send, 200, _OK, TEXT_CT)

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if not gate.ready or gate.draining:
            why = "draining" if gate.draining else "starting"
            await send_body(send, 503, error_body(f"Service is not ready ({why})"), JSON_CT)
        else:
            await send_body(send, 200, _OK, TEXT_CT)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_body(send, 200, self.metrics.render(), _METRICS_CT)

    async def _schema_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_body(send, 200, self._schema_bytes, JSON_CT)

    async def _docs_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_body(send, 200, self._docs_bytes, JSON_CT)

    async def _docs_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        page = self._page
        if page.fresh(scope["headers"]):
            await send({"type": "http.response.start", "status": 304, "headers": page.headers()})
            await send({"type": "http.response.body", "body": b""})
            return
        await send_body(send, 200, page.body, _HTML_CT, page.headers())

    # -- lifespan -------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Create the service instance (once per worker) and start mounted apps."""
        self.gate.deadlines.start(asyncio.get_running_loop())
        instance = self.cls()
        _set_current(instance)
        for h in self.handlers:
            h.bind(instance)
        await self.mounted.startup()
        self.instance = instance
        self.gate.open()

    async def shutdown(self) -> None:
        """Stop accepting work, stop mounted apps and release the thread pool."""
        self.gate.drain()
        self.gate.deadlines.stop()
        try:
            await self.mounted.shutdown()
        finally:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def start_draining(self) -> None:
        """Turn ``/readyz`` to 503 (the server is stopping)."""
        self.gate.drain()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        try:
            await self.startup()
        except BaseException as exc:
            # One line says what and where (the server logs it); the traceback is for --log-level debug.
            where = origin(exc)
            logger.debug("service %s failed to start", self.name, exc_info=exc)
            reason = f"{type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")
            await send({"type": "lifespan.startup.failed", "message": reason})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await self.shutdown()
        except BaseException as exc:
            logger.exception("service %s failed to shut down", self.name)
            await send({"type": "lifespan.shutdown.failed", "message": f"{type(exc).__name__}: {exc}"})
            return
        await send({"type": "lifespan.shutdown.complete"})


def asgi_app(
    cls: type,
    *,
    api_token: str | None = None,
    allow_private_urls: bool | None = None,
    max_body_size: int | None = None,
) -> ServiceApp:
    """The ASGI application serving service class ``cls`` (for uvicorn, granian, hypercorn or tests)."""
    return ServiceApp(
        cls, api_token=api_token, allow_private_urls=allow_private_urls, max_body_size=max_body_size
    )
