"""A stream whose generator never awaits: it would hold the event loop for as long as it runs."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import asgiserve


@asgiserve.service(name="Greedy")
class Greedy:
    """One streaming api that yields for ``seconds`` without ever giving the loop a turn itself."""

    @asgiserve.api
    async def flood(self, seconds: float = 1.5) -> AsyncGenerator[str, None]:
        """Yield one-byte tokens as fast as the loop takes them, for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            yield "x"
