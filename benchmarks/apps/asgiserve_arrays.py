"""The array benchmark's service on asgiserve: a float32 array in, the same array out (``benchmarks/arrays.py``)."""

from __future__ import annotations

import numpy as np

import asgiserve


@asgiserve.service(name="Arrays", open_inference=True)
class Arrays:
    """Echoes an array, so what is measured is the way there and back."""

    @asgiserve.api
    async def echo(self, x: np.ndarray) -> np.ndarray:
        """The array as it came."""
        return x
