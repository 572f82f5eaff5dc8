"""LitServe in the batching benchmark (benchmarks/.venv-litserve): one LitAPI per model, batched.

Usage: python batch_litserve.py synthetic|iris PORT. The route is /predict (LitServe serves one api).
"""

from __future__ import annotations

import sys
from typing import Any

import litserve as ls
from batch_model import MAX_BATCH, WAIT_S, Iris, synthetic


class Synthetic(ls.LitAPI):
    """The synthetic model: a request's ``xs`` holds one item."""

    def setup(self, device: str) -> None:
        """Nothing to load."""

    def decode_request(self, request):  # type: ignore[no-untyped-def]
        """The request's one item (unannotated: LitServe then passes the parsed JSON)."""
        return float(request["xs"][0])

    def batch(self, inputs: list[float]) -> list[float]:
        """The items as one list."""
        return list(inputs)

    def predict(self, xs: list[float]) -> list[float]:
        """The model."""
        return synthetic(xs)

    def unbatch(self, output: list[float]) -> list[float]:
        """One item per request."""
        return list(output)

    def encode_response(self, output: float) -> list[float]:
        """As the other systems answer: a list of one item."""
        return [output]


class IrisAPI(ls.LitAPI):
    """The iris classifier: a request's ``features`` holds one row."""

    def setup(self, device: str) -> None:
        """Load the ONNX model."""
        self.model = Iris()

    def decode_request(self, request):  # type: ignore[no-untyped-def]
        """The request's one row."""
        return request["features"][0]

    def batch(self, inputs: list[Any]) -> list[Any]:
        """The rows as one list."""
        return list(inputs)

    def predict(self, rows: list[Any]) -> Any:
        """The model."""
        return self.model(rows)

    def unbatch(self, output: Any) -> list[int]:
        """One label per request."""
        return [int(v) for v in output]

    def encode_response(self, output: int) -> list[int]:
        """As the other systems answer: a list of one label."""
        return [output]


if __name__ == "__main__":
    kind = Synthetic if sys.argv[1] == "synthetic" else IrisAPI
    api = kind(max_batch_size=MAX_BATCH, batch_timeout=WAIT_S)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(
        host="127.0.0.1",
        port=int(sys.argv[2]),
        num_api_servers=1,
        generate_client_file=False,
        log_level="warning",
    )
