"""A service whose config asks for two workers; its api reports the worker's pid."""

from __future__ import annotations

import os

import asgiserve


@asgiserve.service(workers=2)
class TwoWorkers:
    @asgiserve.api
    async def pid(self) -> int:
        return os.getpid()
