"""The PyTorch example over a real server: the seeded network's answers, batching, the device, the client."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import numpy as np
import torch
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "examples"))

from torch_model import build_network


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(1).random((n, 28, 28), dtype=np.float32)


def _expected(images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return build_network()(torch.from_numpy(images).reshape(-1, 1, 28, 28)).numpy()


def test_answers_are_the_seeded_network(classifier):
    images = _images(8)
    got = httpx.post(classifier.url + "/logits", json={"images": images.tolist()}, timeout=30).json()
    # A GPU's kernels round differently from the CPU's: equal to float32 noise, not bit for bit.
    np.testing.assert_allclose(np.array(got), _expected(images), rtol=1e-3, atol=1e-4)


def test_runs_on_the_gpu_when_there_is_one(classifier):
    device = httpx.post(classifier.url + "/device_name").text
    assert device == ("cuda" if torch.cuda.is_available() else "cpu")


async def _one_image_each(url: str, images: np.ndarray) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(images))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        calls = [client.post("/logits", json={"images": image[None].tolist()}) for image in images]
        return await asyncio.gather(*calls)


def _batches(url: str) -> tuple[float, float]:
    """Rows and batches the server's /logits has run so far."""
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}
    if "asgiserve_batch_size" not in families:
        return 0.0, 0.0
    sizes = {s.name: s.value for s in families["asgiserve_batch_size"].samples}
    return sizes["asgiserve_batch_size_sum"], sizes["asgiserve_batch_size_count"]


def test_concurrent_calls_batch_and_each_gets_its_image(classifier):
    images = _images(64)
    rows0, batches0 = _batches(classifier.url)
    responses = asyncio.run(_one_image_each(classifier.url, images))
    got = np.array([r.json()[0] for r in responses])
    np.testing.assert_allclose(got, _expected(images), rtol=1e-3, atol=1e-4)
    rows, batches = _batches(classifier.url)
    assert rows - rows0 == 64
    assert (rows - rows0) / (batches - batches0) > 1, (rows0, batches0, rows, batches)


def test_client_script(classifier):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "torch_client.py"), classifier.url, "4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    assert f"top classes: {_expected(images).argmax(axis=1).tolist()}" in out, out
    assert "device: " in out, out
