"""Run with BentoML's own interpreter: BentoML's clients use an asgiserve server's task endpoints, and the
script prints what came back as one JSON line.

BentoML's ``SyncHTTPClient.submit`` fails before sending anything (in BentoML 1.4, whatever the server),
so tasks are submitted with its ``AsyncHTTPClient`` and followed with both clients.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import bentoml


async def follow(url: str) -> dict[str, object]:
    out: dict[str, object] = {}
    async with bentoml.AsyncHTTPClient(url, server_ready_timeout=30) as client:
        task = await client.add.submit(a=20, b=22)
        deadline = time.monotonic() + 20
        while (await task.get_status()).value != "completed" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        out["status"] = (await task.get_status()).value
        out["get"] = await task.get()
        again = await task.retry()
        while (await again.get_status()).value != "completed" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        out["retry"] = [again.id != task.id, await again.get()]
        slow = await client.wait_long.submit(seconds=30)
        out["slow"] = slow.id
    return out


def main(url: str) -> None:
    out = asyncio.run(follow(url))
    with bentoml.SyncHTTPClient(url, server_ready_timeout=30) as client:
        slow = str(out.pop("slow"))
        deadline = time.monotonic() + 20
        while client.wait_long.get_status(slow).value != "in_progress" and time.monotonic() < deadline:
            time.sleep(0.02)
        client.wait_long.cancel(slow)
        out["canceled"] = client.wait_long.get_status(slow).value
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
