"""FastAPI peer: pydantic models, async and sync endpoints, a StreamingResponse; mounted by asgiserve too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from workload import TOKEN

app = FastAPI()


class PredictIn(BaseModel):
    """The predict input."""

    text: str


class StreamIn(BaseModel):
    """The stream input."""

    text: str
    tokens: int = 64


class Prediction(BaseModel):
    """The predict output."""

    result: str
    length: int


@app.post("/predict")
async def predict(req: PredictIn) -> Prediction:
    """Upper-case the text."""
    return Prediction(result=req.text.upper(), length=len(req.text))


@app.post("/predict_sync")
def predict_sync(req: PredictIn) -> Prediction:
    """The same work as a sync endpoint (FastAPI runs it in its thread pool)."""
    return Prediction(result=req.text.upper(), length=len(req.text))


@app.get("/hello")
async def hello() -> dict[str, str]:
    """A small fixed JSON answer."""
    return {"message": "hello"}


async def _tokens(n: int) -> AsyncIterator[str]:
    for _ in range(n):
        await asyncio.sleep(0)
        yield TOKEN


@app.post("/stream")
async def stream(req: StreamIn) -> StreamingResponse:
    """Yield ``tokens`` tokens, giving the loop a turn between them."""
    return StreamingResponse(_tokens(req.tokens), media_type="text/plain; charset=utf-8")
