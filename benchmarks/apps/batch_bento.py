"""BentoML in the batching benchmark (benchmarks/.venv-bentoml): the same two models, adaptive batching."""

from __future__ import annotations

import bentoml
import numpy as np
from batch_model import MAX_BATCH, MAX_LATENCY_MS, Iris, synthetic


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Batching:
    """The two models, batched."""

    def __init__(self) -> None:
        self.model = Iris()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def synthetic(self, xs: list[float]) -> list[float]:
        """The synthetic model."""
        return synthetic(xs)

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def iris(self, features: np.ndarray) -> np.ndarray:
        """The iris classifier."""
        return self.model(features)
