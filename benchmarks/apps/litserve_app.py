"""LitServe peer (runs in benchmarks/.venv-litserve): the predict endpoint as an async LitAPI.

Usage: python litserve_app.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import litserve as ls


class PredictAPI(ls.LitAPI):
    """Upper-case the text."""

    def setup(self, device: str) -> None:
        """Nothing to load."""

    async def decode_request(self, request):  # type: ignore[no-untyped-def]
        """Take the text out of the JSON body (left unannotated: LitServe then passes the parsed JSON)."""
        return str(request["text"])

    async def predict(self, text: str) -> str:
        """The work."""
        return text.upper()

    async def encode_response(self, output: str) -> dict[str, Any]:
        """The JSON answer."""
        return {"result": output, "length": len(output)}


if __name__ == "__main__":
    server = ls.LitServer(PredictAPI(enable_async=True), accelerator="cpu", workers_per_device=1)
    server.run(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        num_api_servers=1,
        generate_client_file=False,
        log_level="warning",
    )
