"""The task benchmark service on BentoML (runs in benchmarks/.venv-bentoml): the same task."""

from __future__ import annotations

from typing import Any

import bentoml


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class TaskBench:
    """The benchmark service."""

    @bentoml.task
    async def work(self, text: str) -> dict[str, Any]:
        """Upper-case the text."""
        return {"result": text.upper(), "length": len(text)}
