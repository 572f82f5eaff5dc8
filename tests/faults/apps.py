"""Services the fault tests run (tests import this; it is not a test module)."""

from __future__ import annotations

import asyncio
import os
import pathlib

import asgiserve


@asgiserve.service(workers=2)
class Slow:
    """Two workers; ``slow`` sleeps, ``pid`` answers at once, ``count`` appends one line per run."""

    @asgiserve.api
    async def pid(self) -> int:
        return os.getpid()

    @asgiserve.api
    async def slow(self, seconds: float) -> int:
        await asyncio.sleep(seconds)
        return os.getpid()

    @asgiserve.api
    async def count(self, seconds: float) -> int:
        """Records that it ran (in the file named by ``RUNS_FILE``), then takes ``seconds``."""
        with open(os.environ["RUNS_FILE"], "a") as fh:
            fh.write(f"{os.getpid()}\n")
        await asyncio.sleep(seconds)
        return os.getpid()


@asgiserve.service
class Uploads:
    """One worker; ``size`` takes a file upload and returns its size."""

    @asgiserve.api
    async def size(self, file: pathlib.Path, label: str = "") -> int:
        return file.stat().st_size

    @asgiserve.api
    async def echo(self, text: str) -> str:
        return text
