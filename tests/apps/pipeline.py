"""A two-service pipeline: ``Classify`` uses ``Preprocess`` in the same worker, ``RemoteClassify`` the same
service over HTTP (at ``PREPROCESS_URL``)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import asgiserve

BUILT: list[str] = []  # the order in which this worker built the services


@asgiserve.service(threads=2)
class Preprocess:
    """Cleans text; ``slow`` holds one of its two threads for a while."""

    def __init__(self) -> None:
        BUILT.append("Preprocess")
        self.pid = os.getpid()

    @asgiserve.api
    def clean(self, text: str) -> str:
        return " ".join(text.lower().split())

    @asgiserve.api
    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return threading.current_thread().name

    @asgiserve.api
    async def shout(self, text: str) -> str:
        await asyncio.sleep(0)
        return text.upper()


def _verdict(cleaned: str, loud: str) -> dict[str, object]:
    return {"cleaned": cleaned, "loud": loud, "words": len(cleaned.split()), "positive": "good" in cleaned}


@asgiserve.service
class Classify:
    """Calls ``Preprocess`` directly, in this worker."""

    pre = asgiserve.depends(Preprocess)

    def __init__(self) -> None:
        BUILT.append("Classify")
        self.pre_pid = self.pre.pid  # the dependency is built before this __init__ runs

    @asgiserve.api
    def classify(self, text: str) -> dict[str, object]:
        cleaned = self.pre.clean(text)
        return _verdict(cleaned, self.pre.to_sync.shout(text=cleaned))

    @asgiserve.api
    async def together(self, seconds: float) -> dict[str, object]:
        t0 = time.monotonic()
        names = await asyncio.gather(self.pre.to_async.slow(seconds=seconds), self.pre.to_async.slow(seconds=seconds))
        return {"elapsed": time.monotonic() - t0, "threads": sorted(names)}

    @asgiserve.api
    def built(self) -> dict[str, object]:
        return {"order": BUILT, "same_pid": self.pre_pid == os.getpid()}


@asgiserve.service
class RemoteClassify:
    """The same pipeline, ``Preprocess`` served elsewhere."""

    pre = asgiserve.depends(Preprocess, url=os.environ.get("PREPROCESS_URL", "http://127.0.0.1:9"))
    bare = asgiserve.depends(url=os.environ.get("PREPROCESS_URL", "http://127.0.0.1:9"))

    @asgiserve.api
    def classify(self, text: str) -> dict[str, object]:
        cleaned = self.pre.clean(text=text)  # a sync api: the blocking client
        return _verdict(cleaned, self.pre.to_sync.shout(text=cleaned))

    @asgiserve.api
    async def classify_async(self, text: str) -> dict[str, object]:
        cleaned = await self.bare.to_async.clean(text=text)
        return _verdict(cleaned, await self.pre.shout(text=cleaned))  # an async api: the asyncio client
