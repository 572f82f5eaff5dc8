"""One FastAPI app, served directly (``app``) and mounted at "/" in a service (``Parity``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import PlainTextResponse, RedirectResponse
from pydantic import BaseModel

import asgiserve

app = FastAPI()


class Order(BaseModel):
    item: str
    quantity: int = 1


@app.get("/json")
async def json_route() -> dict[str, Any]:
    return {"ok": True, "values": [1, 2.5, "three", None]}


@app.get("/users/{user_id}")
async def user(user_id: int, verbose: bool = False) -> dict[str, Any]:
    return {"user_id": user_id, "verbose": verbose}


@app.get("/search")
async def search(q: str, limit: int = 10, tags: list[str] | None = Query(default=None)) -> dict[str, Any]:
    return {"q": q, "limit": limit, "tags": tags}


@app.post("/orders", status_code=201)
async def create_order(order: Order, x_request_id: str | None = Header(default=None)) -> dict[str, Any]:
    return {"order": order.model_dump(), "request_id": x_request_id}


@app.get("/teapot")
async def teapot() -> None:
    raise HTTPException(status_code=418, detail="short and stout", headers={"x-tea": "earl grey"})


@app.get("/text", response_class=PlainTextResponse)
async def text() -> str:
    return "plain words"


@app.head("/both")
@app.get("/both")
async def both() -> dict[str, str]:
    return {"method": "either"}


@app.get("/go")
async def go() -> RedirectResponse:
    return RedirectResponse("/json", status_code=307)


@app.get("/slash/")
async def slash() -> str:
    return "slash"


@asgiserve.service
@asgiserve.mount_asgi_app(app, path="/")
class Parity:
    @asgiserve.api
    def predict(self, x: int = 0) -> int:
        return x
