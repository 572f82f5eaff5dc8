"""The array benchmark's app on FastAPI: the array as a JSON list of floats, validated by pydantic."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Echo(BaseModel):
    """The request body."""

    x: list[float]


@app.post("/echo")
def echo(body: Echo) -> list[float]:
    """The array as it came."""
    return body.x
