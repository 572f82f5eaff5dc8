"""A service served over the Open Inference Protocol too (``open_inference=True``)."""

from __future__ import annotations

import numpy as np

import asgiserve


@asgiserve.service(open_inference=True)
class Models:
    """Array models: each api is a model named after it."""

    @asgiserve.api
    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    @asgiserve.api
    async def cumsum(self, ids: np.ndarray) -> np.ndarray:
        return np.cumsum(ids.astype("int64"))

    @asgiserve.api
    def shout(self, texts: list[str]) -> list[str]:
        return [t.upper() + "!" for t in texts]

    @asgiserve.api
    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x.min(axis=-1), x.max(axis=-1)

    @asgiserve.api
    def scale(self, x: np.ndarray, factor: float = 2.0) -> np.ndarray:
        return x * factor

    @asgiserve.api
    def nbytes(self, blob: bytes) -> int:
        return len(blob)

    @asgiserve.api(batchable=True, max_batch_size=16, max_latency_ms=20)
    def batched(self, x: np.ndarray) -> np.ndarray:
        return x * 10


app = asgiserve.to_asgi(Models)
