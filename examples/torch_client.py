"""Call the PyTorch example: random images, one call each, all at once (the server batches them).

python -m asgiserve torch_model:ImageClassifier --port 3000   # from examples/, in another shell
python examples/torch_client.py [URL] [IMAGES]
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np

import asgiserve


async def classify(url: str, images: np.ndarray) -> list[int]:
    """The top class of each image, one concurrent call per image."""
    async with asgiserve.AsyncHTTPClient(url) as client:
        answers = await asyncio.gather(*[client.logits(images=image[None].tolist()) for image in images])
    return [int(np.argmax(a[0])) for a in answers]


def main(url: str, count: int) -> None:
    """Print where the network runs and the top class of ``count`` seeded random images."""
    images = np.random.default_rng(0).random((count, 28, 28), dtype=np.float32)
    with asgiserve.SyncHTTPClient(url) as client:
        print("device:", client.device_name())
    print("top classes:", asyncio.run(classify(url, images)))


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000",
        int(sys.argv[2]) if len(sys.argv) > 2 else 16,
    )
