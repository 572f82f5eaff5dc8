"""The array benchmark's service on BentoML (runs in benchmarks/.venv-bentoml): the same echo api."""

from __future__ import annotations

import bentoml
import numpy as np


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Arrays:
    """Echoes an array."""

    @bentoml.api
    def echo(self, x: np.ndarray) -> np.ndarray:
        """The array as it came."""
        return x
