"""Example service: a small PyTorch image classifier, batched, on the GPU when there is one.

A convolutional network for 28x28 grey images (MNIST's shape) with ten classes. Its weights are random
but fixed (``torch.manual_seed``), so every process builds the same network without a download; put
trained weights in with ``load_state_dict`` in ``__init__`` for a real model. Concurrent calls are
merged along dimension 0 into one forward pass:

    python -m asgiserve torch_model:ImageClassifier --port 3000   # from examples/
    python examples/torch_client.py
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import asgiserve

SEED = 20240601
SIDE = 28
CLASSES = 10


def build_network(seed: int = SEED) -> nn.Module:
    """The network, its weights drawn from ``seed`` (the same on every machine for a given torch)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * (SIDE // 4) ** 2, 64),
        nn.ReLU(),
        nn.Linear(64, CLASSES),
    ).eval()


@asgiserve.service(threads=1)
class ImageClassifier:
    """Ten-class scores for 28x28 grey images."""

    def __init__(self) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.network = build_network().to(self.device)

    @asgiserve.api(batchable=True, batch_dim=0, max_batch_size=128, max_latency_ms=1000)
    def logits(self, images: np.ndarray) -> np.ndarray:
        """The class scores of each image: ``images`` is [N, 28, 28] (pixel values 0..1), the answer [N, 10]."""
        x = torch.as_tensor(images, dtype=torch.float32, device=self.device).reshape(-1, 1, SIDE, SIDE)
        with torch.inference_mode():
            return self.network(x).cpu().numpy()

    @asgiserve.api
    def device_name(self) -> str:
        """Where the network runs: ``cuda`` or ``cpu``."""
        return self.device.type
