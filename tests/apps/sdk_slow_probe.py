"""A service whose sync ``__is_ready__`` takes a second: it must run off the event loop."""

from __future__ import annotations

import time

import asgiserve


@asgiserve.service
class SlowProbe:
    def __is_ready__(self) -> bool:
        time.sleep(1.0)
        return True

    @asgiserve.api
    async def ping(self) -> str:
        return "pong"
