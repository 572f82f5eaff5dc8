"""Call the iris service: a few flowers at once, then many concurrent one-row calls (which it batches).

python -m asgiserve iris_onnx:IrisClassifier --port 3000   # from examples/, in another shell
python examples/iris_client.py [URL]
"""

from __future__ import annotations

import asyncio
import sys

import asgiserve

SPECIES = ("setosa", "versicolor", "virginica")
FLOWERS = [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]]


async def concurrent(url: str, rows: list[list[float]]) -> list[int]:
    """One call per row, all at once: the server merges them into batches."""
    async with asgiserve.AsyncHTTPClient(url) as client:
        answers = await asyncio.gather(*[client.classify(features=[row]) for row in rows])
    return [int(a[0]) for a in answers]


def main(url: str) -> None:
    """Print the species of ``FLOWERS``, one call, then one call per flower concurrently."""
    with asgiserve.SyncHTTPClient(url) as client:
        labels = client.classify(features=FLOWERS)
        probabilities = client.probabilities(features=FLOWERS)
    for row, label, p in zip(FLOWERS, labels, probabilities):
        print(f"{row} -> {SPECIES[int(label)]} (p={max(p):.3f})")
    print(
        "one call per flower, concurrently:",
        [SPECIES[i] for i in asyncio.run(concurrent(url, FLOWERS * 20))][:3],
        "...",
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000")
