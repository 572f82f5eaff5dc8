"""The blocking client is generated from the asyncio one: the generated file is current, and the rewrite
does what it says (and refuses what it cannot rewrite)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.unasync import HEADER, ROOT, SOURCE, TARGET, UnasyncError, unasync


def test_generated_sync_client_is_current():
    assert TARGET.read_text() == unasync(SOURCE.read_text()), "run `python tests/unasync.py`"
    check = subprocess.run([sys.executable, "tests/unasync.py", "--check"], cwd=ROOT, capture_output=True)
    assert check.returncode == 0, check.stderr


def test_rewrite_token_by_token():
    source = '''import asyncio
import time


class AsyncClient:
    """Wraps ``AsyncConnectionPool``; "await" in a string stays."""

    async def __aenter__(self) -> AsyncClient:
        return self

    async def get(self, pool: AsyncConnectionPool) -> list[bytes]:
        await asyncio.sleep(0)  # an AsyncIterator would do, await here
        async with self.lock:
            return [c async for c in await pool.stream(b"GET")]
'''
    expected = '''import threading
import time


class SyncClient:
    """Wraps ``ConnectionPool``; "await" in a string stays."""

    def __enter__(self) -> SyncClient:
        return self

    def get(self, pool: ConnectionPool) -> list[bytes]:
        time.sleep(0)  # an Iterator would do, await here
        with self.lock:
            return [c for c in pool.stream(b"GET")]
'''
    assert unasync(source) == HEADER + expected


@pytest.mark.parametrize(
    "line",
    [
        "asyncio.gather(a, b)",  # no blocking counterpart in the table
        "x = AsyncStream(pool)",  # an Async name the table does not know
        "async def __aiter__(self): pass",
        "await stream.aclose()",
    ],
)
def test_unknown_async_constructs_stop_the_rewrite(line):
    with pytest.raises(UnasyncError):
        unasync(line + "\n")
