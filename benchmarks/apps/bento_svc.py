"""BentoML peer (runs in benchmarks/.venv-bentoml): the predict api on ``bentoml serve``."""

from __future__ import annotations

from typing import Any

import bentoml


# One worker and no access log, as every other peer runs.
@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Predict:
    """The benchmark service."""

    @bentoml.api
    async def predict(self, text: str) -> dict[str, Any]:
        """Upper-case the text."""
        return {"result": text.upper(), "length": len(text)}

    @bentoml.api
    def predict_sync(self, text: str) -> dict[str, Any]:
        """The same work as a sync api."""
        return {"result": text.upper(), "length": len(text)}
