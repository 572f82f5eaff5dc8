"""The iris example over a real server: the ONNX model answers as scikit-learn does, and concurrent calls batch."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "examples"))

from train_iris import export, train


@pytest.fixture(scope="module")
def model():
    return train()


@pytest.fixture
def iris(run_server, model, tmp_path):
    # The model fitted here, exported here: lbfgs may stop at a slightly different point from one machine
    # (or BLAS threading) to another, so the committed iris.onnx need not match a fresh fit to 1e-5.
    path = tmp_path / "iris.onnx"
    export(model, path)
    return run_server(
        "asgiserve", "iris_onnx:IrisClassifier", "--no-access-log", env={"IRIS_MODEL": str(path)}
    )


def _batch_sizes(url: str, endpoint: str) -> tuple[float, float]:
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}
    rows = {
        s.name: s.value for s in families["asgiserve_batch_size"].samples if s.labels["endpoint"] == endpoint
    }
    return rows["asgiserve_batch_size_sum"], rows["asgiserve_batch_size_count"]


def test_predictions_agree_with_sklearn(iris, model):
    x, _ = load_iris(return_X_y=True)
    labels = httpx.post(iris.url + "/classify", json={"features": x.tolist()}).json()
    assert labels == model.predict(x).tolist()
    probabilities = httpx.post(iris.url + "/probabilities", json={"features": x.tolist()}).json()
    np.testing.assert_allclose(probabilities, model.predict_proba(x), atol=1e-5)


async def _one_row_each(url: str, rows: list[list[float]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(rows))
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        return await asyncio.gather(*[client.post("/classify", json={"features": [r]}) for r in rows])


def test_concurrent_calls_batch_and_each_gets_its_row(iris, model):
    x, _ = load_iris(return_X_y=True)
    expected = model.predict(x).tolist()
    responses = asyncio.run(_one_row_each(iris.url, x.tolist()))
    assert [r.json() for r in responses] == [[e] for e in expected]
    total, count = _batch_sizes(iris.url, "/classify")
    assert total == len(x)
    # 150 one-row calls at once: while one batch runs the rest queue, so the model sees batches of many rows.
    assert total / count > 1, (total, count)


def test_client_script(iris):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "iris_client.py"), iris.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "[5.1, 3.5, 1.4, 0.2] -> setosa" in out and "-> virginica" in out, out
    assert "concurrently: ['setosa', 'versicolor', 'virginica']" in out, out


def test_the_committed_model_serves(run_server, model):
    # The iris.onnx in examples/ (what `python -m asgiserve iris_onnx:IrisClassifier` serves): its labels
    # are a fresh fit's (its probabilities may differ in the fourth decimal, see the fixture).
    server = run_server("asgiserve", "iris_onnx:IrisClassifier", "--no-access-log")
    x, y = load_iris(return_X_y=True)
    labels = httpx.post(server.url + "/classify", json={"features": x.tolist()}).json()
    assert sum(a == b for a, b in zip(labels, model.predict(x).tolist())) >= len(x) - 1
    assert sum(a == b for a, b in zip(labels, y.tolist())) / len(x) > 0.95
