"""Example service: an iris classifier (scikit-learn, exported to ONNX) served with onnxruntime, batched.

The model file ``iris.onnx`` sits beside this file (``train_iris.py`` makes it); ``IRIS_MODEL`` names
another. Each api takes an array of rows of four features (sepal length, sepal width, petal length,
petal width, in cm); concurrent calls are merged along dimension 0 into one ``InferenceSession.run``:

    python -m asgiserve iris_onnx:IrisClassifier --port 3000   # from examples/
    curl -X POST localhost:3000/classify -H 'content-type: application/json' \\
        -d '{"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import asgiserve

MODEL_PATH = Path(__file__).resolve().parent / "iris.onnx"


@asgiserve.service(threads=1)
class IrisClassifier:
    """Iris species from four measurements."""

    def __init__(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # A model this small gains nothing from more threads; one leaves the cores to the server.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        path = os.environ.get("IRIS_MODEL") or str(MODEL_PATH)
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = self.session.run(None, {self.input_name: features.astype(np.float32)})
        return labels, probabilities

    @asgiserve.api(batchable=True, batch_dim=0, max_batch_size=256, max_latency_ms=1000)
    def classify(self, features: np.ndarray) -> np.ndarray:
        """The class index (0 setosa, 1 versicolor, 2 virginica) of each row."""
        return self._run(features)[0]

    @asgiserve.api(batchable=True, batch_dim=0, max_batch_size=256, max_latency_ms=1000)
    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """The probability of each class for each row, shape [N, 3]."""
        return self._run(features)[1]
