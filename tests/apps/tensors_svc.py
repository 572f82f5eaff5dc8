"""A service with numpy array inputs and outputs, for the binary media types (msgpack, .npy)."""

from __future__ import annotations

from typing import Any

import numpy as np

import asgiserve


@asgiserve.service
class Tensors:
    """Array echoes and transforms."""

    @asgiserve.api
    def double(self, a: np.ndarray) -> np.ndarray:
        return a * 2

    @asgiserve.api
    async def describe(self, a: np.ndarray, scale: float = 1.0) -> dict[str, Any]:
        return {
            "dtype": str(a.dtype),
            "shape": list(a.shape),
            "sum": float(a.sum()) * scale,
            "copy": a * scale,
        }

    @asgiserve.api
    async def viewed(self, a: np.ndarray) -> dict[str, bool]:
        # Whether the decoded array is a view of the request body (no copy) and how it can be used.
        return {"owns": bool(a.flags.owndata), "writeable": bool(a.flags.writeable)}

    @asgiserve.api
    def make(self, n: int = 4, dtype: str = "float32") -> np.ndarray:
        return np.arange(n, dtype=dtype).reshape(2, -1) if n % 2 == 0 else np.arange(n, dtype=dtype)

    @asgiserve.api
    async def anything(self, n: int = 3) -> Any:
        return np.arange(n, dtype="int64")

    @asgiserve.api(batchable=True, max_batch_size=8, max_latency_ms=50)
    def batched(self, xs: np.ndarray) -> np.ndarray:
        return xs + 1

    @asgiserve.api
    def text(self, s: str = "hi") -> str:
        return s.upper()


app = asgiserve.to_asgi(Tensors)
