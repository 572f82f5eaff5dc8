"""Services mounting real FastAPI, Starlette and Quart apps, and raw ASGI apps that echo their scope."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel
from quart import Quart, url_for
from quart import request as quart_request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

import asgiserve

# -- root_path consequences with the real frameworks ------------------------------------------------------

api = FastAPI(title="Inner API")
router = APIRouter(prefix="/router")
sub = FastAPI()  # mounted inside ``api`` at /sub, with a ``self`` route of the service


class Item(BaseModel):
    """A pydantic model whose name clashes with the service's own ``Item``."""

    name: str
    quantity: int


@api.get("/items/{item_id}", name="read_item")
async def read_item(item_id: int, request: Request) -> dict[str, Any]:
    return {"id": item_id, "url": str(request.url_for("read_item", item_id=item_id))}


@api.post("/items")
async def create_item(item: Item) -> Item:
    return item


async def star_things(request: StarletteRequest) -> JSONResponse:
    return JSONResponse({"url": str(request.url_for("things")), "root_path": request.scope["root_path"]})


star = Starlette(routes=[Route("/things/", star_things, name="things")])
quart = Quart(__name__)


@quart.get("/where")
async def quart_where() -> dict[str, str]:
    return {
        "path": quart_request.path,
        "root_path": quart_request.root_path,
        "url_for": url_for("quart_where"),
        "service": asgiserve.get_current_service().name,
    }


# The service's own type, also named ``Item`` in the schemas: /docs.json must keep both apart.
Stock = msgspec.defstruct("Item", [("sku", str)])


@asgiserve.service
@asgiserve.mount_asgi_app(api, path="/v1")
@asgiserve.mount_asgi_app(star, path="/star")
@asgiserve.mount_asgi_app(quart, path="/quart", name="quart")
class Frameworks:
    name = "Frameworks"
    greeting = "hi"

    @asgiserve.api
    def count(self, item: Stock) -> int:  # type: ignore[valid-type]
        return len(item.sku)

    @api.get("/self/{n}")
    def with_self(self, n: int, shout: bool = False) -> dict[str, Any]:
        text = f"{self.greeting} {n}"
        return {"text": text.upper() if shout else text}

    @router.get("/who")
    async def who(self) -> str:
        return self.name

    @sub.get("/deep")
    async def deep(self, depth: int = 1) -> str:
        return f"{self.name} at depth {depth}"


@router.get("/outside")
async def outside(service: Frameworks = Depends(asgiserve.get_current_service)) -> str:
    return f"outside {service.name}"


api.include_router(router)
api.mount("/sub", sub)

# -- boundaries and precedence with raw ASGI apps ---------------------------------------------------------


def echo(label: str) -> Any:
    """A raw ASGI app answering with its label, root_path and path (and a websocket greeting)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        info = {"app": label, "root_path": scope.get("root_path", ""), "path": scope["path"]}
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(info)})
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            raise RuntimeError("http and websocket only")  # no lifespan support: skipped quietly
        body = json.dumps(info).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@asgiserve.mount_asgi_app(echo("api"), path="/api")
@asgiserve.mount_asgi_app(echo("api-v2"), path="/api/v2/")
@asgiserve.mount_asgi_app(echo("root"), path="/")
@asgiserve.service
class Boundaries:
    @asgiserve.api
    def predict(self, x: int = 1) -> int:
        return x * 2
