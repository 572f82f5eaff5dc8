"""Services served by several workers: each api says which worker answered and what devices it was given."""

from __future__ import annotations

import os

import asgiserve


@asgiserve.service(workers=3)
class Counted:
    @asgiserve.api
    async def pid(self) -> int:
        return os.getpid()


@asgiserve.service(workers=2, resources={"gpu": 1})
class OneGpuEach:
    """Reads the devices in ``__init__``, where a model would be put on them."""

    def __init__(self) -> None:
        self.devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.index = asgiserve.worker_index()

    @asgiserve.api
    async def whoami(self) -> dict[str, object]:
        return {"pid": os.getpid(), "index": self.index, "devices": self.devices}


@asgiserve.service(workers=2)
class Slow:
    @asgiserve.api
    async def pid(self) -> int:
        return os.getpid()

    @asgiserve.api
    async def slow(self, seconds: float) -> int:
        import asyncio

        await asyncio.sleep(seconds)
        return os.getpid()
