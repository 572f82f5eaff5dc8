"""Ray Serve in the batching benchmark (.venv-ray): one deployment per model, ``@serve.batch``.

Usage: python batch_ray.py synthetic|iris PORT. A local Ray (this process's children) serves the
deployment at / on 127.0.0.1:PORT until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import ray
from batch_model import MAX_BATCH, WAIT_S, Iris, synthetic
from ray import serve
from starlette.requests import Request


# Ray's default max_ongoing_requests (5) would cap every batch at 5: let every client in.
@serve.deployment(max_ongoing_requests=1024)
class Synthetic:
    """The synthetic model; a request's ``xs`` holds one item."""

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=WAIT_S)
    async def run(self, xs: list[float]) -> list[float]:
        """The model, off the replica's event loop so that requests keep arriving while it runs."""
        return await asyncio.to_thread(synthetic, xs)

    async def __call__(self, request: Request) -> list[float]:
        """One item in, a list of one item out."""
        body = await request.json()
        return [await self.run(float(body["xs"][0]))]


@serve.deployment(max_ongoing_requests=1024)
class IrisDeployment:
    """The iris classifier; a request's ``features`` holds one row."""

    def __init__(self) -> None:
        self.model = Iris()

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=WAIT_S)
    async def run(self, rows: list[Any]) -> list[int]:
        """The model on the batch's rows."""
        return [int(v) for v in self.model(rows)]

    async def __call__(self, request: Request) -> list[int]:
        """One row in, a list of one label out."""
        body = await request.json()
        return [await self.run(body["features"][0])]


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[2])})
    deployment = Synthetic if sys.argv[1] == "synthetic" else IrisDeployment
    serve.run(deployment.bind(), route_prefix="/", name=sys.argv[1])
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.run_until_complete(stop.wait())
    serve.shutdown()
    ray.shutdown()
