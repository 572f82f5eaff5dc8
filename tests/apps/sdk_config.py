"""Services using BentoML's ``@service`` keys: path_prefix with a mounted app, envs, endpoints, http
host/port, and ``add_asgi_middleware``."""

from __future__ import annotations

import os

from fastapi import FastAPI

import asgiserve
from asgiserve.types import Message, Receive, Scope, Send

chat_app = FastAPI()


@chat_app.get("/hello")
def chat_hello() -> dict[str, str]:
    return {"from": "chat"}


@asgiserve.service(path_prefix="/v1", description="Summaries, served under /v1.")
@asgiserve.asgi_app(chat_app, path="/chat")
class Prefixed:
    """The class docstring, shadowed by the description."""

    @asgiserve.api
    def summarize(self, text: str) -> str:
        return text[:5]


@asgiserve.service(
    envs=[
        {"name": "SDK_GREETING", "value": "hello"},
        {"name": "SDK_PRESET", "value": "from-service"},
        {"name": "SDK_BUILD_ONLY", "value": "build", "stage": "build"},
    ]
)
class WithEnvs:
    def __init__(self) -> None:
        # Read in __init__: the envs must be set by then.
        self.seen = {k: os.environ.get(k) for k in ("SDK_GREETING", "SDK_PRESET", "SDK_BUILD_ONLY")}

    @asgiserve.api
    def env(self) -> dict[str, str | None]:
        return self.seen


@asgiserve.service(envs=[{"name": "SDK_REQUIRED_TOKEN"}])
class MissingEnv:
    @asgiserve.api
    def ping(self) -> str:
        return "pong"


@asgiserve.service(endpoints={"livez": "/health", "readyz": "/ready"})
class CustomProbes:
    @asgiserve.api
    def ping(self) -> str:
        return "pong"


@asgiserve.service(http={"host": "127.0.0.1", "port": int(os.environ.get("SDK_HTTP_PORT", "3999"))})
class HTTPDefaults:
    @asgiserve.api
    def ping(self) -> str:
        return "pong"


class Trail:
    """Pure ASGI middleware: appends its name to the ``x-trail`` response header and to ``scope["trail"]``."""

    def __init__(self, app: object, name: str) -> None:
        self.app = app
        self.name = name.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        scope.setdefault("trail", []).append(self.name.decode())

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                old = [v for k, v in headers if k == b"x-trail"]
                headers = [(k, v) for k, v in headers if k != b"x-trail"]
                headers.append((b"x-trail", b", ".join([*old, self.name])))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)  # type: ignore[operator]


mw_app = FastAPI()


@mw_app.get("/seen")
def seen() -> str:
    return "mounted"


@asgiserve.service(traffic={"max_concurrency": 4})
@asgiserve.asgi_app(mw_app, path="/m")
class Wrapped:
    @asgiserve.api
    async def predict(self, x: int) -> int:
        return x * 2


Wrapped.add_asgi_middleware(Trail, name="first")  # type: ignore[attr-defined]
Wrapped.add_asgi_middleware(Trail, name="second")  # type: ignore[attr-defined]
