"""A BentoML service with a task (run by BentoML itself, in its own virtualenv), for the client tests."""

from __future__ import annotations

import time

import bentoml


@bentoml.service
class BentoTasks:
    @bentoml.task
    def add(self, a: int, b: int = 0, delay: float = 0.0) -> int:
        time.sleep(delay)
        return a + b
