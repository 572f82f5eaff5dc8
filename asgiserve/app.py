"""The ASGI application for one service: dispatch, traffic rules, infra routes and lifespan.

``ServiceApp`` is a plain ASGI 3 callable, so any ASGI server can run it. Per request it does one dict
lookup for the route, a counter check for ``max_concurrency``, and hands off to the api handler or the
mounted app; everything else (route table, codecs, schema documents) is prepared in ``__init__``.

A service with CORS or ``add_asgi_middleware`` middlewares is a ``WrappedServiceApp``: the same app behind
those layers (middlewares outermost, the first added first, then CORS), and every request through ASGI so
that the layers see it. Other services carry no trace of them: the class is chosen when the app is built.
Lifecycle hooks and probes (``hooks.py``) are looked up once, at build time, the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, cast

import msgspec

from .codec import JSON_CT, TEXT_CT
from .errors import origin
from .handlers import APIHandler
from .hooks import Hooks, probe, run_deployment
from .limits import DEFAULT_LIMITS
from .metrics import Metrics
from .mount import MountedApps, merge_openapi
from .oip import OpenInference
from .options import join_paths
from .responses import error_body, send_body, send_error
from .routing import Handler, Mount, Router
from .schema import DocsPage, mount_docs, moved_infra, openapi, service_schema
from .service import _set_current, get_apis, get_mounts, get_spec
from .traffic import Gate
from .types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .depends import RemoteService
    from .tasks import TaskRunner

__all__ = ["ServiceApp", "WrappedServiceApp", "to_asgi"]

logger = logging.getLogger("asgiserve")

_OK = b"ok\n"
_METRICS_CT = b"text/plain; version=0.0.4; charset=utf-8"
_HTML_CT = b"text/html; charset=utf-8"


class ServiceApp:
    """The ASGI app serving one ``@service`` class: its apis, infra routes and mounted apps."""

    def __new__(cls, svc: type, **options: object) -> ServiceApp:
        """A ``WrappedServiceApp`` when the service has CORS or middlewares, else a plain one."""
        spec = get_spec(svc)
        if cls is ServiceApp and (spec.cors is not None or spec.middlewares):
            cls = WrappedServiceApp
        return object.__new__(cls)

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
        self.hooks = hooks = Hooks.of(cls)
        prefix = spec.path_prefix
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
            if prefix:
                h.route = join_paths(prefix, h.route)
            router.add_route(h.route, ("POST",), h)
        self.tasks = _task_runner(self)
        self._api_token = api_token
        self.remote: list[RemoteService] = []
        livez = self._livez_checked if hooks.is_alive else self._livez
        readyz = self._readyz_checked if hooks.is_ready else self._readyz
        # BentoML's places: the path prefix before every infra route but /schema.json, which its clients
        # read at the root.
        infra: dict[str, Handler] = {
            prefix + "/livez": livez,
            prefix + "/healthz": livez,
            prefix + "/readyz": readyz,
            prefix + "/metrics": self._metrics,
            "/schema.json": self._schema_json,
            prefix + "/docs.json": self._docs_json,
        }
        # ``endpoints`` names where the probes are; they stay at their usual places too.
        infra.setdefault(spec.livez, livez)
        infra.setdefault(spec.readyz, readyz)
        self.mount_specs = get_mounts(cls)
        mount_paths = [join_paths(prefix, m.path).rstrip("/") or "/" for m in self.mount_specs]
        if (prefix or "/") not in mount_paths:  # a mount at the prefix's root serves that page's place
            infra[join_paths(prefix, "/")] = self._docs_page
        for path, handler in infra.items():
            router.add_route(path, ("GET", "HEAD"), handler)
        # Declared with a loose type, so that any framework's app passes: it is an ASGI 3 callable.
        mounts = [
            router.add_mount(path, cast(ASGIApp, m.app), m.name)
            for path, m in zip(mount_paths, self.mount_specs)
        ]
        for mount in mounts:
            mount.handler = self._mount_caller(mount)
        self.mounted = MountedApps(cls, mounts)
        if OpenInference.enabled(spec.config):  # the Open Inference Protocol at /v2, past the exact routes
            oip = OpenInference(self.name, self.handlers, readyz)
            router.add_mount("/v2", oip, "open-inference").handler = oip
        self.routes = router.routes

        mounted = [(m.prefix or "/", m.name, mount_docs(m.prefix or "/", m.app)) for m in mounts]
        self.schema = service_schema(self.name, self.handlers, mounted)
        description = spec.description if spec.description is not None else cls.__doc__
        if description:
            self.schema["description"] = description.strip()
        doc = openapi(self.name, description, self.handlers)
        if prefix or (spec.livez, spec.readyz) != ("/livez", "/readyz"):
            doc["paths"] = moved_infra(doc["paths"], prefix, spec.livez, spec.readyz)
        self.openapi = merge_openapi(doc, mounts)
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

        Not for file outputs, which go out piece by piece through ASGI messages, nor for file inputs, whose
        forms are read as they arrive.
        """
        route = self.routes.get(path)
        handler = route.handler if route is not None else None
        if isinstance(handler, APIHandler) and handler.direct:
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
        elif self.remote and (waiting := await _remote_waiting(self.remote)):
            await send_body(
                send, 503, error_body(f"Service is not ready (dependency {waiting} is not)"), JSON_CT
            )
        else:
            await send_body(send, 200, _OK, TEXT_CT)

    async def _readyz_checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if not gate.ready or gate.draining:
            await self._readyz(scope, receive, send)
        elif not await self._probe("__is_ready__"):
            message = "Service is not ready because .__is_ready__() returns False."
            await send_body(send, 503, error_body(message), JSON_CT)
        else:
            await self._readyz(scope, receive, send)  # remote dependencies, if any

    async def _livez_checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Before ``__init__`` has run there is nothing to ask: the process is up.
        if self.instance is not None and not await self._probe("__is_alive__"):
            message = "Service is dead because .__is_alive__() returns False."
            await send_body(send, 503, error_body(message), JSON_CT)
        else:
            await send_body(send, 200, _OK, TEXT_CT)

    async def _probe(self, name: str) -> bool:
        try:
            return await probe(self.instance, name)
        except Exception:
            logger.exception("%s.%s raised", self.name, name)
            return False

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

    def deploy(self) -> None:
        """Set the service's ``envs`` and run its deployment hooks, unless done already in this process
        (the CLI calls this in the parent, before workers fork)."""
        run_deployment(self.cls, self.hooks, self.spec.envs)

    async def startup(self) -> None:
        """Create the service instance (once per worker), run its startup hooks and start mounted apps."""
        self.gate.deadlines.start(asyncio.get_running_loop())
        self.deploy()
        self.remote = _start_dependencies(self.cls, self._api_token)
        instance = self.cls()
        _set_current(instance)
        for h in self.handlers:
            h.bind(instance)
        if self.tasks is not None:
            await self.tasks.start()
        self.instance = instance
        await self.hooks.run_startup(instance)
        await self.mounted.startup()
        self.gate.open()

    async def shutdown(self) -> None:
        """Stop accepting work, stop mounted apps, run the shutdown hooks and release the thread pool."""
        self.gate.drain()
        self.gate.deadlines.stop()
        try:
            if self.tasks is not None:
                await self.tasks.stop()
            await self.mounted.shutdown()
        finally:
            try:
                if self.instance is not None and self.hooks.shutdown:
                    await self.hooks.run_shutdown(self.instance)
            finally:
                self.executor.shutdown(wait=False, cancel_futures=True)
                if self.remote:
                    from .depends import stop_dependencies

                    await stop_dependencies(self.remote)

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


class WrappedServiceApp(ServiceApp):
    """A service's app behind its CORS layer and ``add_asgi_middleware`` middlewares."""

    def __init__(self, cls: type, **options: object) -> None:
        super().__init__(cls, **options)  # type: ignore[arg-type]
        inner: ASGIApp = super().__call__
        app = inner
        if self.spec.cors is not None:
            from .cors import CORS

            app = CORS(app, **self.spec.cors)  # type: ignore[arg-type]
        for middleware, kwargs in reversed(self.spec.middlewares):
            app = cast(ASGIApp, middleware(app, **kwargs))
        self.stack = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 entry point: through the layers."""
        await self.stack(scope, receive, send)

    def direct_handler(self, path: str) -> APIHandler | None:
        """None: every request goes through the layers."""
        return None


# -- tasks and dependencies: loaded only for a service that has them --------------------------------


def _task_runner(app: ServiceApp) -> TaskRunner | None:
    """The runner of the app's ``@task`` apis, their routes added to its router; None without tasks."""
    if not any(h.spec.is_task for h in app.handlers):
        return None
    from .tasks import TaskRunner

    runner = TaskRunner(app.handlers, app.gate, app.metrics, app.spec)
    for path, methods, handler in runner.routes():
        app.router.add_route(path, methods, handler)
    return runner


def _start_dependencies(cls: type, token: str | None) -> list[RemoteService]:
    """Build ``cls``'s ``depends()`` in this worker; its remote ones (none unless ``depends`` was used)."""
    if f"{__package__}.depends" not in sys.modules:
        return []
    from .depends import start_dependencies

    return start_dependencies(cls, token)


async def _remote_waiting(remote: list[RemoteService]) -> str | None:
    """The URL of the first remote dependency not ready, or None when all are."""
    answers = await asyncio.gather(*(r.is_ready() for r in remote))
    return next((r.url for r, ok in zip(remote, answers) if not ok), None)


def to_asgi(
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
