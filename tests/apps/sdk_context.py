"""A service whose apis take BentoML's ``Context``: sync, async, streams, batches, files; ``app`` for uvicorn."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import AsyncGenerator, Generator

import asgiserve as bentoml
from asgiserve.app import ServiceApp  # the ASGI app for uvicorn


def _request(ctx: bentoml.Context) -> dict[str, object]:
    r = ctx.request
    return {
        "custom": r.headers["X-Custom"] if "x-custom" in r.headers else None,
        "custom_lower": r.headers.get("x-CUSTOM"),
        "cookies": r.cookies,
        "query": dict(r.query_params),
        "q_all": r.query_params.getlist("q"),
        "url": str(r.url),
        "path": r.url.path,
        "method": r.method,
        "client_host": r.client.host if r.client else None,
    }


def _decorate(ctx: bentoml.Context, status: int) -> None:
    ctx.response.status_code = status
    ctx.response.headers["X-Echo"] = "yes"
    ctx.response.headers.append("X-Multi", "a")
    ctx.response.headers.append("X-Multi", "b")
    ctx.response.cookies.append(bentoml.Cookie("session", "abc", max_age=60, httponly=True))
    ctx.response.set_cookie("theme", "dark", path="/x", secure=True, samesite="strict")


@bentoml.service
class CtxSvc:
    @bentoml.api
    async def echo(self, text: str, ctx: bentoml.Context) -> dict[str, object]:
        _decorate(ctx, 201)
        return {"text": text, **_request(ctx)}

    @bentoml.api
    def echo_sync(self, ctx, text: str = "") -> dict[str, object]:  # unannotated, first: still injected
        _decorate(ctx, 202)
        return {"text": text, **_request(ctx)}

    @bentoml.api
    def put_state(self, key: str, value: int, context: bentoml.Context) -> int:
        context.state[key] = value
        return os.getpid()

    @bentoml.api
    async def get_state(self, context) -> dict[str, object]:
        return {"state": dict(context.state), "pid": os.getpid()}

    @bentoml.api
    def temp(self, ctx: bentoml.Context) -> dict[str, object]:
        first = ctx.temp_dir
        pathlib.Path(first, "scratch.txt").write_text("x")
        return {"dir": first, "same": ctx.temp_dir == first, "exists": os.path.isdir(first)}

    @bentoml.api
    def file_out(self, ctx: bentoml.Context) -> pathlib.Path:
        ctx.response.headers["X-File"] = "1"
        out = pathlib.Path(ctx.temp_dir) / "out.txt"
        out.write_text("from the temp dir")
        return out

    @bentoml.api
    async def stream(self, n: int, ctx: bentoml.Context) -> AsyncGenerator[str, None]:
        _decorate(ctx, 203)
        for i in range(n):
            yield f"{i};"

    @bentoml.api
    def stream_sync(self, n: int, ctx) -> Generator[str, None, None]:
        _decorate(ctx, 206)
        for i in range(n):
            time.sleep(0.001)
            yield f"{i};"

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=5000)
    async def double(self, xs: list[int], ctx: bentoml.Context) -> list[int]:
        ctx.response.headers["X-Batch-Query"] = ctx.request.query_params.get("tag", "")
        return [x * 2 for x in xs]

    @bentoml.api
    async def teapot(self, ctx) -> str:
        ctx.response.status_code = 418
        ctx.response.headers["Content-Type"] = "text/x-tea"
        return "short and stout"

    @bentoml.api
    async def fails(self, ctx) -> str:
        _decorate(ctx, 201)
        raise ValueError("boom")

    @bentoml.api
    async def bad_header(self, ctx) -> str:
        ctx.response.headers["X-Evil"] = "a\r\nSet-Cookie: x=1"
        return "never"

    @bentoml.api
    async def mapped_headers(self, ctx, evil: bool = False) -> str:
        """Replaces the whole header mapping, as BentoML allows; checked when the answer is made."""
        ctx.response.headers = {"X-Map": "a\r\nX-Evil: 1" if evil else "one"}
        return "mapped"

    @bentoml.api
    async def bad_status(self, code: int, ctx) -> str:
        ctx.response.status_code = code
        return "status"

    @bentoml.api
    def bad_status_sync(self, code: int, ctx) -> str:
        ctx.response.status_code = code
        return "status"

    @bentoml.api
    async def not_a_context(self, ctx: int) -> int:  # annotated with another type: a plain parameter
        return ctx + 1


app = ServiceApp(CtxSvc)
