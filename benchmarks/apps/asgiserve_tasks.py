"""The task benchmark service on asgiserve: one async task doing the predict work."""

from __future__ import annotations

from typing import Any

import asgiserve


@asgiserve.service
class TaskBench:
    """The benchmark service."""

    @asgiserve.task
    async def work(self, text: str) -> dict[str, Any]:
        """Upper-case the text."""
        return {"result": text.upper(), "length": len(text)}
