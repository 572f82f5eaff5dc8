"""The Open Inference Protocol (KServe v2 REST) at /v2, driven by Triton's own client (``tritonclient.http``)
in JSON and binary mode, and by raw requests for the errors; on every server."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import RUNNERS


@pytest.fixture(scope="module", params=RUNNERS)
def server(request, tmp_path_factory):
    from tests.conftest import start

    target = "tests.apps.oip_svc:app" if request.param == "uvicorn" else "tests.apps.oip_svc:Models"
    s = start(request.param, target, tmp_path_factory.mktemp("oip"))
    yield s
    s.stop()


@pytest.fixture
def client(server):
    c = triton.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=20)
    yield c
    c.close()


def _input(name, arr, datatype, binary):
    t = triton.InferInput(name, list(arr.shape), datatype)
    t.set_data_from_numpy(arr, binary_data=binary)
    return t


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("add")
    assert client.is_model_ready("add", model_version="1")
    assert not client.is_model_ready("missing")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    meta = client.get_model_metadata("add")
    assert meta["name"] == "add"
    assert meta["inputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [-1]},
        {"name": "b", "datatype": "FP32", "shape": [-1]},
    ]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1]}]
    assert client.get_model_metadata("shout")["inputs"] == [{"name": "texts", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in client.get_model_metadata("split")["outputs"]] == ["output_0", "output_1"]
    with pytest.raises(InferenceServerException, match="Unknown model 'missing'"):
        client.get_model_metadata("missing")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_fp32_int64_bytes_and_tuples(client, binary):
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 3
    out = [triton.InferRequestedOutput("output", binary_data=binary)]
    r = client.infer("add", [_input("a", a, "FP32", binary), _input("b", a, "FP32", binary)], outputs=out)
    got = r.as_numpy("output")
    assert got.dtype == np.float32 and got.shape == (3, 4)
    np.testing.assert_array_equal(got, a + a)
    assert ("data" in r.get_response()["outputs"][0]) is not binary

    ids = np.array([[1, 2], [3, 2**40]], dtype=np.int64)
    r = client.infer("cumsum", [_input("ids", ids, "INT64", binary)])
    assert r.as_numpy("output").dtype == np.int64
    np.testing.assert_array_equal(r.as_numpy("output"), np.cumsum(ids))

    texts = np.array([b"hello", "wörld".encode(), b""], dtype=object)
    r = client.infer("shout", [_input("texts", texts, "BYTES", binary)])
    assert r.as_numpy("output").tolist() == [b"HELLO!", "WÖRLD!".encode(), b"!"]

    x = np.array([[1.0, 5.0, 3.0], [-2.0, 0.5, 9.0]])
    r = client.infer("split", [_input("x", x, "FP64", binary)], request_id="req-7")
    np.testing.assert_array_equal(r.as_numpy("output_0"), [1.0, -2.0])
    np.testing.assert_array_equal(r.as_numpy("output_1"), [5.0, 9.0])
    assert r.get_response()["id"] == "req-7" and r.get_response()["model_name"] == "split"


def test_binary_inputs_with_json_outputs_and_scalar_parameters(client):
    x = np.ones((2, 2), dtype=np.float32)
    factor = np.array([4.0], dtype=np.float64)
    r = client.infer(
        "scale",
        [_input("x", x, "FP32", True), _input("factor", factor, "FP64", False)],
        outputs=[triton.InferRequestedOutput("output", binary_data=False)],
    )
    assert r.get_response()["outputs"][0]["data"] == [4.0] * 4
    r = client.infer("nbytes", [_input("blob", np.array([b"\x00\xff\x10"], dtype=object), "BYTES", True)])
    assert r.as_numpy("output").tolist() == [3]


def test_batchable_api_through_the_protocol(client, server):
    def one(i):
        c = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
        try:
            x = np.full(3, i, dtype=np.float32)
            return c.infer("batched", [_input("x", x, "FP32", True)]).as_numpy("output")
        finally:
            c.close()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, np.full(3, i * 10, dtype=np.float32))


def _infer(url, model, request, binary=b"", headers=None):
    body = json.dumps(request).encode()
    h = {"content-type": "application/json", **(headers or {})}
    if binary:
        h["inference-header-content-length"] = str(len(body))
    return httpx.post(f"{url}/v2/models/{model}/infer", content=body + binary, headers=h)


def _fp32(name, shape, data=None, size=None):
    t = {"name": name, "shape": shape, "datatype": "FP32"}
    if size is not None:
        t["parameters"] = {"binary_data_size": size}
    else:
        t["data"] = data
    return t


@pytest.mark.parametrize(
    ("model", "request_", "binary", "status", "words"),
    [
        ("add", {"inputs": [_fp32("a", [2, 2], [1, 2, 3]), _fp32("b", [1], [1])]}, b"", 400, "shape [2, 2] holds 4 elements, data has 3"),
        ("add", {"inputs": [_fp32("a", [3], size=8), _fp32("b", [1], [1])]}, b"\0" * 8, 400, "needs 12 bytes, binary data has 8"),
        ("add", {"inputs": [{"name": "a", "shape": [1], "datatype": "FP128", "data": [1]}]}, b"", 400, "unknown datatype 'FP128'"),
        ("add", {"inputs": [_fp32("a", [1], ["x"])]}, b"", 400, "FP32 data must be numbers"),
        ("add", {"inputs": [_fp32("c", [1], [1])]}, b"", 400, "has no input 'c' (inputs: a, b)"),
        ("add", {"inputs": [_fp32("a", [1], [1])]}, b"", 400, "missing required field `b`"),
        ("add", {"inputs": [_fp32("a", [-1], [1])]}, b"", 400, "shape must be a list of non-negative integers"),
        ("add", {"inputs": [_fp32("a", [1], size=40)]}, b"\0" * 4, 400, "exceeds the binary data"),
        ("add", {"inputs": [_fp32("a", [1], [1]), _fp32("b", [1], [1])]}, b"\0" * 4, 400, "not claimed by any input"),
        ("add", {"inputs": "a"}, b"", 400, "'inputs' list"),
        ("shout", {"inputs": [{"name": "texts", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]}, b"\x09\0\0\0ab", 400, "runs past its binary data"),
        ("missing", {"inputs": []}, b"", 404, "Unknown model 'missing'"),
    ],
    ids=["json-shape", "binary-shape", "datatype", "not-numbers", "unknown-input", "missing-input", "bad-shape",
         "binary-size", "unclaimed", "inputs-not-list", "bytes-truncated", "unknown-model"],
)
def test_bad_tensors_get_a_400_with_a_message(server, model, request_, binary, status, words):
    r = _infer(server.url, model, request_, binary)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert words in r.json()["error"]
    ok = _infer(server.url, "add", {"inputs": [_fp32("a", [1], [1]), _fp32("b", [1], [2])]})
    assert ok.json()["outputs"][0]["data"] == [3.0]  # and it serves on


def test_bad_framing_and_methods(server):
    r = httpx.post(f"{server.url}/v2/models/add/infer", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "invalid inference request JSON" in r.json()["error"]
    r = httpx.post(
        f"{server.url}/v2/models/add/infer", content=b"{}", headers={"inference-header-content-length": "99"}
    )
    assert r.status_code == 400 and "exceeds the body" in r.json()["error"]
    assert httpx.get(f"{server.url}/v2/models/add/infer").status_code == 405
    assert httpx.post(f"{server.url}/v2/health/live").status_code == 405
    assert httpx.get(f"{server.url}/v2/nothing/here").status_code == 404
    with pytest.raises(InferenceServerException, match=r"\[400\] input .a.: shape \[2\] of FP32 needs 8 bytes, binary data has 4"):
        c = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
        bad = triton.InferInput("a", [2], "FP32")
        bad._raw_data, bad._parameters = np.ones(1, np.float32).tobytes(), {"binary_data_size": 4}
        bad._data = None
        try:
            bad2 = triton.InferInput("b", [1], "FP32")
            bad2.set_data_from_numpy(np.ones(1, np.float32), binary_data=False)
            c.infer("add", [bad, bad2])
        finally:
            c.close()


def test_off_unless_asked_then_by_flag_beside_the_apis(run_server):
    plain = run_server("asgiserve", "tests.apps.typed:Typed")
    assert httpx.get(plain.url + "/v2/health/live").status_code == 404
    on = run_server("asgiserve", "tests.apps.typed:Typed", "--open-inference", "--api-token", "s3cret")
    auth = {"authorization": "Bearer s3cret"}
    assert httpx.get(on.url + "/v2/health/live").status_code == 200  # probes stay open, as /livez does
    assert httpx.post(on.url + "/v2/custom", json={"x": 3}, headers=auth).json() == {"x": 3}  # an api route
    request = {"inputs": [{"name": "n", "shape": [1], "datatype": "INT64", "data": [4]}]}
    assert _infer(on.url, "constrained", request).status_code == 401
    r = _infer(on.url, "constrained", request, headers=auth)
    assert r.json()["outputs"] == [{"name": "output", "datatype": "INT64", "shape": [1], "data": [8]}]
    request["inputs"][0]["data"] = [11]
    r = _infer(on.url, "constrained", request, headers=auth)
    assert r.status_code == 400 and "Expected `int` <= 10" in r.json()["error"]
