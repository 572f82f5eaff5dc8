"""The ASGI application for one service: dispatch, traffic rules, infra routes and lifespan.

``ServiceApp`` is a plain ASGI 3 callable, so any ASGI server can run it. Per request it does one dict
lookup for the route, a counter check for ``max_concurrency``, and hands off to the api handler or the
mounted app; everything else (route table, codecs, schema documents) is prepared in ``__init__``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from asyncio import current_task
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic
from typing import Any

import msgspec

from .codec import JSON_CT, PLAIN_JSON, TEXT_CT, encode_plain_json
from .handlers import _INTERNAL_ERROR as _INTERNAL_BODY
from .handlers import APIHandler, Response
from .metrics import Metrics
from .mount import MountedApps, merge_openapi
from .responses import error_body, send_body, send_error
from .routing import Handler, Mount, Router
from .schema import docs_page, openapi, service_schema
from .service import _set_current, get_apis, get_mounts, get_spec
from .traffic import Deadlines

__all__ = ["ServiceApp", "asgi_app"]

logger = logging.getLogger("asgiserve")

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[..., Any]

DEFAULT_MAX_BODY = 100 * 1024 * 1024
_OK = b"ok\n"
_METRICS_CT = b"text/plain; version=0.0.4; charset=utf-8"
_HTML_CT = b"text/html; charset=utf-8"
_RETRY_AFTER = [(b"retry-after", b"1")]
_UNAUTHORIZED_HDR = [(b"www-authenticate", b'Bearer realm="asgiserve"')]
_UNAUTHORIZED_BODY = error_body("Missing or invalid API token")
_NOT_READY_BODY = error_body("Service is not ready")
_TOO_MANY_BODY = error_body("Too many requests: over max_concurrency")


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
        self.timeout = spec.timeout
        self.max_concurrency = spec.max_concurrency or 1 << 62
        self.api_token = api_token.encode() if api_token else None
        if allow_private_urls is None:
            allow_private_urls = os.environ.get("ASGISERVE_ALLOW_PRIVATE_URLS", "") in ("1", "true", "yes")
        # File inputs given as URLs may point at private, loopback or link-local hosts only when allowed.
        self.allow_private_urls = allow_private_urls
        if max_body_size is None:
            max_body_size = int(os.environ.get("ASGISERVE_MAX_BODY_SIZE", DEFAULT_MAX_BODY))
        # Enforced here too, so that the limit holds under any ASGI server, not only asgiserve's own.
        self.max_body_size = max_body_size
        self.in_flight = 0
        self.instance: Any = None
        self.draining = False
        self.metrics = Metrics(spec.name)
        self.deadlines = Deadlines(spec.timeout)
        self._timeout_message = f"No response within the {spec.timeout:g} s timeout"
        self.executor = ThreadPoolExecutor(spec.threads, thread_name_prefix="asgiserve-api")
        self._loop: asyncio.AbstractEventLoop | None = None

        self.handlers = [APIHandler(self, attr, func, aspec) for attr, func, aspec in get_apis(cls)]
        self.router = router = Router()
        for h in self.handlers:
            router.add_route(h.route, ("POST",), h, limited=True)
        infra = {
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
            router.add_route(path, ("GET", "HEAD"), handler, limited=False)
        mounts = [router.add_mount(m.path, m.app, m.name) for m in self.mount_specs]
        for mount in mounts:
            mount.handler = self._mount_caller(mount)
        self.mounted = MountedApps(cls, mounts)
        self.routes = router.routes

        self.schema = service_schema(self.name, self.handlers, [(m.path, m.name) for m in self.mount_specs])
        self.openapi = merge_openapi(openapi(self.name, cls.__doc__, self.handlers), mounts)
        self._schema_bytes = msgspec.json.encode(self.schema)
        self._docs_bytes = msgspec.json.encode(self.openapi)
        self._page_bytes = docs_page(self.name, self.schema)

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
                if scope["method"] not in route.methods:
                    await send_error(
                        send, 405, f"Method {scope['method']} not allowed", None, [(b"allow", route.allow)]
                    )
                elif route.limited:
                    await self._limited(route.endpoint, route.handler, scope, receive, send)
                else:
                    await route.handler(scope, receive, send)
                return
            mount = self.router.match_mount(path)
            if mount is not None:
                await self._limited(mount.endpoint, mount.handler, scope, receive, send)
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
            if mount is None or self._refuse(scope["headers"]) is not None:
                # Closing before accepting makes the server answer the handshake with 403.
                await send({"type": "websocket.close", "code": 1008 if mount is not None else 1000})
            else:
                await mount.app(mount.child_scope(scope), receive, send)
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    def _refuse(self, scope_headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, Any] | None:
        """The error to answer instead of running a limited route, or None to admit it."""
        if self.api_token is not None and not self._authorized(scope_headers):
            return 401, _UNAUTHORIZED_BODY, _UNAUTHORIZED_HDR
        if self.instance is None or self.draining:
            return 503, _NOT_READY_BODY, None
        if self.in_flight >= self.max_concurrency:
            return 429, _TOO_MANY_BODY, _RETRY_AFTER
        return None

    async def _limited(
        self, endpoint: str, handler: Callable[..., Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run an api or mounted route under the token, readiness, concurrency and timeout rules."""
        t0 = monotonic()
        refused = self._refuse(scope["headers"])
        if refused is not None:
            status, body, extra = refused
            await send_body(send, status, body, JSON_CT, extra)
            self.metrics.observe(endpoint, status, monotonic() - t0)
            return
        self.in_flight += 1
        progress = self.metrics.in_progress
        progress[endpoint] = progress.get(endpoint, 0) + 1
        deadlines = self.deadlines
        task = current_task()
        deadlines.pending[task] = t0 + self.timeout  # type: ignore[index]
        status = 500
        try:
            status = await handler(scope, receive, send)
        except asyncio.CancelledError:
            if not deadlines.claim_expiry(task):
                raise
            status = await self.answer_error(send, 504, self._timeout_message)
        finally:
            deadlines.finish(task)
            self.in_flight -= 1
            progress[endpoint] -= 1
            self.metrics.observe(endpoint, status, monotonic() - t0)

    def fast_handler(self, path: str) -> APIHandler | None:
        """The api handler a server may call through ``fast_start`` and ``fast_finish`` for ``POST path``.

        Not for streams and file outputs, which need ASGI messages to go out piece by piece.
        """
        route = self.routes.get(path)
        handler = route.handler if route is not None else None
        if isinstance(handler, APIHandler) and not handler.streams and handler.codec.output.kind != "file":
            return handler
        return None

    def fast_start(
        self, handler: APIHandler, headers: list[tuple[bytes, bytes]], body: bytes, task: Any, t0: float
    ) -> Response | tuple[None, Coroutine[Any, Any, Any], bool]:
        """Admit and decode a ``POST`` to a non-streaming api whose whole body is at hand, without ASGI.

        Returns the response to send now (refused, or bad input), or ``(None, coroutine, direct)`` for the
        server to run as ``task`` and hand to ``fast_finish``. Same rules and results as the ASGI path; the
        slot, deadline and metrics bookkeeping repeats ``_limited``'s on purpose: inline, it costs no calls.
        """
        endpoint = handler.route
        refused = self._refuse(headers)
        if refused is None and len(body) > self.max_body_size:
            refused = 413, error_body(f"Request body over the {self.max_body_size} byte limit"), None
        if refused is not None:
            status, body, extra = refused
            self.metrics.observe(endpoint, status, monotonic() - t0)
            return status, JSON_CT, body, extra
        try:
            coro, direct = handler.begin(headers, body)
        except Exception as exc:
            response = handler.failed(exc)
            self.metrics.observe(endpoint, response[0], monotonic() - t0)
            return response
        self.in_flight += 1
        progress = self.metrics.in_progress
        try:
            progress[endpoint] += 1
        except KeyError:
            progress[endpoint] = 1
        self.deadlines.pending[task] = t0 + self.timeout
        return None, coro, direct

    def fast_finish(
        self,
        handler: APIHandler,
        task: Any,
        t0: float,
        direct: bool,
        result: Any,
        error: BaseException | None,
    ) -> Response | None:
        """The response for a call ``fast_start`` began; None when it was cancelled (not by its deadline)."""
        deadlines = self.deadlines
        response: Response | None
        if error is None:
            if not direct:
                response = result
            elif handler.json_out and type(result) in PLAIN_JSON:
                try:  # handler.finish(), inline, for the commonest result
                    response = 200, JSON_CT, encode_plain_json(result), None
                except Exception:
                    response = handler.finish(result)  # which logs why it cannot be encoded
            else:
                response = handler.finish(result)
        elif isinstance(error, asyncio.CancelledError):
            response = (
                (504, JSON_CT, error_body(self._timeout_message), None)
                if deadlines.claim_expiry(task)
                else None
            )
        elif isinstance(error, Exception):
            response = handler.failed(error)
        else:
            response = (500, JSON_CT, _INTERNAL_BODY, None)
        deadlines.finish(task)
        self.in_flight -= 1
        endpoint = handler.route
        metrics = self.metrics
        metrics.in_progress[endpoint] -= 1
        metrics.observe(endpoint, 500 if response is None else response[0], monotonic() - t0)
        return response

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        token = self.api_token
        assert token is not None
        for name, value in headers:
            if name == b"authorization":
                scheme, _, given = bytes(value).partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token)
        return False

    async def answer_error(
        self,
        send: Send,
        status: int,
        message: str,
        detail: list[Any] | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> int:
        """Send a JSON error and return its status."""
        await send_error(send, status, message, detail, extra)
        return status

    def hold_slot_until(self, work: Future[Any]) -> None:
        """Keep a concurrency slot taken until ``work`` (a thread running past its timeout) finishes."""
        loop = asyncio.get_running_loop()
        self.in_flight += 1

        def release(_: Future[Any]) -> None:
            loop.call_soon_threadsafe(self._release)

        work.add_done_callback(release)

    def _release(self) -> None:
        self.in_flight -= 1

    def _mount_caller(self, mount: Mount) -> Handler:
        """Build, once per mount, the handler calling its app; the deadline ends when its response starts."""
        app = mount.app
        child_scope = mount.child_scope
        where = mount.prefix or "/"
        pending = self.deadlines.pending

        async def call(scope: Scope, receive: Receive, send: Send) -> int:
            task = current_task()
            status = 0

            # A plain function handing back send's awaitable: no extra coroutine per message.
            def watch(message: dict[str, Any]) -> Any:
                nonlocal status
                if not status and message["type"] == "http.response.start":
                    pending.pop(task, None)  # type: ignore[arg-type]
                    status = message["status"]
                return send(message)

            try:
                await app(child_scope(scope), receive, watch)
            except Exception:
                if status:
                    raise
                logger.exception("mounted app at %s raised", where)
                return await self.answer_error(send, 500, "Internal Server Error")
            if not status:
                logger.error("mounted app at %s returned without a response", where)
                return await self.answer_error(send, 500, "Internal Server Error")
            return status

        return call

    # -- infra routes ---------------------------------------------------------------------------------

    async def _livez(self, scope: Scope, receive: Receive, send: Send) -> int:
        await send_body(send, 200, _OK, TEXT_CT)
        return 200

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> int:
        if self.instance is None or self.draining:
            why = "draining" if self.draining else "starting"
            await send_body(send, 503, error_body(f"Service is not ready ({why})"), JSON_CT)
            return 503
        await send_body(send, 200, _OK, TEXT_CT)
        return 200

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> int:
        await send_body(send, 200, self.metrics.render(), _METRICS_CT)
        return 200

    async def _schema_json(self, scope: Scope, receive: Receive, send: Send) -> int:
        await send_body(send, 200, self._schema_bytes, JSON_CT)
        return 200

    async def _docs_json(self, scope: Scope, receive: Receive, send: Send) -> int:
        await send_body(send, 200, self._docs_bytes, JSON_CT)
        return 200

    async def _docs_page(self, scope: Scope, receive: Receive, send: Send) -> int:
        await send_body(send, 200, self._page_bytes, _HTML_CT)
        return 200

    # -- lifespan -------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Create the service instance (once per worker) and start mounted apps."""
        self._loop = asyncio.get_running_loop()
        self.deadlines.start(self._loop)
        instance = self.cls()
        _set_current(instance)
        for h in self.handlers:
            h.bind(instance)
        await self.mounted.startup()
        self.instance = instance

    async def shutdown(self) -> None:
        """Stop accepting work, stop mounted apps and release the thread pool."""
        self.draining = True
        self.deadlines.stop()
        try:
            await self.mounted.shutdown()
        finally:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def start_draining(self) -> None:
        """Turn ``/readyz`` to 503 (the server is stopping)."""
        self.draining = True

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        try:
            await self.startup()
        except BaseException as exc:
            logger.exception("service %s failed to start", self.name)
            await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
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
