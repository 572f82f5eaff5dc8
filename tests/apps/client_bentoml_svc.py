"""A BentoML service (run by BentoML itself, in its own virtualenv) that asgiserve's clients call."""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Generator
from typing import Any

import bentoml


@bentoml.service
class BentoSvc:
    @bentoml.api
    def summarize(self, text: str) -> str:
        return text.split(".")[0] + "."

    @bentoml.api
    def predict(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"received": data, "keys": sorted(data)}

    @bentoml.api
    def add(self, a: int, b: int = 0) -> int:
        return a + b

    @bentoml.api
    def generate(self, img: pathlib.Path, scale: int = 1) -> pathlib.Path:
        out = pathlib.Path(tempfile.mkdtemp()) / f"out-{img.stem}.png"
        out.write_bytes(img.read_bytes() * scale)
        return out

    @bentoml.api
    def stream_data(self, n: int = 3) -> Generator[str, None, None]:
        for i in range(n):
            yield f"chunk{i};"
