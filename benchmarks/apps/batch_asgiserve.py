"""asgiserve in the batching benchmark: the synthetic model and the iris classifier as batchable apis."""

from __future__ import annotations

import numpy as np
from batch_model import MAX_BATCH, MAX_LATENCY_MS, Iris, synthetic

import asgiserve


@asgiserve.service(threads=1)
class Batching:
    """The two models, batched."""

    def __init__(self) -> None:
        self.iris = Iris()

    @asgiserve.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def synthetic(self, xs: list[float]) -> list[float]:
        """The synthetic model."""
        return synthetic(xs)

    @asgiserve.api(batchable=True, batch_dim=0, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def iris(self, features: np.ndarray) -> np.ndarray:
        """The iris classifier."""
        return self.iris(features)
