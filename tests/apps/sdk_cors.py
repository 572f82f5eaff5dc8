"""CORS services (BentoML's ``http.cors`` keys) and, for the parity test, Starlette apps with the same
routes behind Starlette's own CORSMiddleware configured from the same settings."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import asgiserve

STRICT: dict[str, Any] = {
    "enabled": True,
    "access_control_allow_origins": ["https://app.example"],
    "access_control_allow_origin_regex": r"https://.*\.trusted\.example",
    "access_control_allow_methods": ["GET", "POST"],
    "access_control_allow_headers": ["X-Custom"],
    "access_control_allow_credentials": True,
    "access_control_expose_headers": ["X-Request-Id"],
    "access_control_max_age": 120,
}
OPEN: dict[str, Any] = {
    "enabled": True,
    "access_control_allow_origins": "*",
    "access_control_allow_methods": "*",
    "access_control_allow_headers": "*",
}
# BentoML's key -> Starlette's CORSMiddleware argument (what BentoML itself passes).
TO_STARLETTE = {
    "access_control_allow_origins": "allow_origins",
    "access_control_allow_origin_regex": "allow_origin_regex",
    "access_control_allow_methods": "allow_methods",
    "access_control_allow_headers": "allow_headers",
    "access_control_allow_credentials": "allow_credentials",
    "access_control_expose_headers": "expose_headers",
    "access_control_max_age": "max_age",
}


def starlette_options(cors: dict[str, Any]) -> dict[str, Any]:
    """Starlette's arguments for BentoML's ``cors`` settings (strings become one-item lists)."""
    out = {}
    for key, value in cors.items():
        if key in TO_STARLETTE:
            out[TO_STARLETTE[key]] = [value] if isinstance(value, str) and key != "access_control_allow_origin_regex" else value
    return out


inner = Starlette(routes=[Route("/seen", lambda r: PlainTextResponse("mounted"))])


@asgiserve.service(http={"cors": STRICT}, traffic={"max_concurrency": 1})
@asgiserve.asgi_app(inner, path="/m")
class Strict:
    def __init__(self) -> None:
        self.calls = 0

    @asgiserve.api
    async def predict(self, x: int = 1) -> dict[str, int]:
        self.calls += 1
        return {"y": x * 2}

    @asgiserve.api
    async def slow(self, seconds: float = 1.0) -> str:
        await asyncio.sleep(seconds)
        return "slept"

    @asgiserve.api
    async def calls_so_far(self) -> int:
        return self.calls


@asgiserve.service(http={"cors": OPEN})
@asgiserve.asgi_app(inner, path="/m")
class Open:
    @asgiserve.api
    async def predict(self, x: int = 1) -> dict[str, int]:
        return {"y": x * 2}


async def _predict(request: Request) -> JSONResponse:
    body = await request.json() if await request.body() else {}
    return JSONResponse({"y": body.get("x", 1) * 2})


def _reference(cors: dict[str, Any]) -> Starlette:
    routes = [
        Route("/predict", _predict, methods=["POST"]),
        Route("/readyz", lambda r: PlainTextResponse("ok\n")),
        Route("/m/seen", lambda r: PlainTextResponse("mounted")),
    ]
    return Starlette(routes=routes, middleware=[Middleware(CORSMiddleware, **starlette_options(cors))])


strict_reference = _reference(STRICT)
open_reference = _reference(OPEN)
