"""A service whose config asks for two workers; its api reports the worker's pid."""

from __future__ import annotations

import os

import asgiserve


@asgiserve.service(workers=2)
class TwoWorkers:
    @asgiserve.api
    async def pid(self) -> int:
        return os.getpid()


@asgiserve.service(workers=2)
class FlakyStart:
    """Its ``__init__`` fails while the file named by ``FLAKY_MARKER`` exists (a model that will not load)."""

    def __init__(self) -> None:
        if os.path.exists(os.environ["FLAKY_MARKER"]):
            raise RuntimeError("the model failed to load")

    @asgiserve.api
    async def pid(self) -> int:
        return os.getpid()
