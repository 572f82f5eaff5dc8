"""Binary bodies: msgpack requests and answers chosen by Accept, numpy arrays as the msgpack extension and
as .npy, the media types in the documents, and the clients' ``codec="msgpack"``; on every server."""

from __future__ import annotations

import asyncio
import json

import httpx
import msgspec
import numpy as np
import pytest

from asgiserve.client import AsyncHTTPClient, SyncHTTPClient
from asgiserve.tensors import NDARRAY_EXT, decode_msgpack, decode_npy, encode_msgpack, encode_npy
from tests.conftest import RUNNERS

MP = {"content-type": "application/msgpack", "accept": "application/msgpack"}
NPY = {"content-type": "application/x-npy", "accept": "application/x-npy"}


@pytest.fixture(scope="module", params=RUNNERS)
def typed(request, tmp_path_factory):
    from tests.conftest import start

    target = "tests.apps.typed:app" if request.param == "uvicorn" else "tests.apps.typed:Typed"
    s = start(request.param, target, tmp_path_factory.mktemp("typed"))
    yield s
    s.stop()


@pytest.fixture(scope="module", params=RUNNERS)
def tensors(request, tmp_path_factory):
    from tests.conftest import start

    target = "tests.apps.tensors_svc:app" if request.param == "uvicorn" else "tests.apps.tensors_svc:Tensors"
    s = start(request.param, target, tmp_path_factory.mktemp("tensors"))
    yield s
    s.stop()


# Every input type the JSON path supports (tests/apps/typed.py), as (route, JSON body).
CASES = [
    ("/scalars", {"s": "x", "i": 3, "f": 1.5, "b": True}),
    ("/containers", {"xs": [1, 2], "d": {"a": 0.5}, "t": [2, "b"]}),
    ("/containers", {"xs": [], "d": {}}),
    ("/optional", {"maybe": None, "either": "s"}),
    ("/optional", {"maybe": 4, "either": 7}),
    ("/literal", {"mode": "slow"}),
    ("/constrained", {"n": 5}),
    ("/struct", {"item": {"name": "a", "price": 2.5, "tags": ["t"]}}),
    ("/sort_items", {"items": [{"name": "b", "price": 2.0}, {"name": "a", "price": 1.0}]}),
    ("/dataclass_in", {"p": {"x": 1, "y": 2}}),
    ("/typeddict_in", {"m": {"title": "T", "year": 1999}}),
    ("/array", {"a": [[1, 2], [3, 4]]}),
    ("/raw", {"n": 5}),
    ("/untyped", {"value": {"k": [1, "two", None]}}),
    ("/anything", {"value": [1.5, {"x": False}]}),
    ("/v2/custom", {"x": 9}),
    ("/literal", {}),
]


def _plain(value):
    """An answer as builtin values (arrays as nested lists) for comparing JSON and msgpack answers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize(("route", "body"), CASES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(CASES)])
def test_every_json_type_round_trips_as_msgpack(typed, route, body):
    with httpx.Client(base_url=typed.url) as c:
        as_json = c.post(route, json=body)
        as_mp = c.post(route, content=msgspec.msgpack.encode(body), headers=MP)
    assert as_json.status_code == as_mp.status_code == 200, (as_json.text, as_mp.text)
    ctype = as_json.headers["content-type"]
    if ctype.startswith("application/json"):
        assert as_mp.headers["content-type"] == "application/msgpack"
        assert _plain(decode_msgpack(as_mp.content)) == as_json.json()
    else:  # text and bytes outputs keep their own media type, whatever Accept says
        assert as_mp.headers["content-type"] == ctype
        assert as_mp.content == as_json.content


@pytest.mark.parametrize(
    ("route", "body", "loc"),
    [
        ("/scalars", {"s": "x", "i": "three", "f": 1.0, "b": True}, ["body", "i"]),
        ("/scalars", {"s": "x", "f": 1.0, "b": True}, ["body", "i"]),
        ("/constrained", {"n": 11}, ["body", "n"]),
        ("/sort_items", {"items": [{"name": "a", "price": "cheap"}]}, ["body", "items", 0, "price"]),
        ("/literal", {"mode": "medium"}, ["body", "mode"]),
        ("/literal", {"nope": 1}, ["body", "nope"]),
    ],
)
def test_msgpack_validation_errors_name_the_field_as_json_ones_do(typed, route, body, loc):
    with httpx.Client(base_url=typed.url) as c:
        as_mp = c.post(route, content=msgspec.msgpack.encode(body), headers=MP)
        as_json = c.post(route, json=body)
    assert as_mp.status_code == as_json.status_code == 400
    assert as_mp.headers["content-type"] == "application/json"  # errors stay JSON
    err = as_mp.json()
    assert err["detail"][0]["loc"] == loc
    assert err == as_json.json()


def test_malformed_msgpack_is_a_400_and_the_server_serves_on(typed):
    with httpx.Client(base_url=typed.url) as c:
        r = c.post("/scalars", content=b"\xc1\x00", headers=MP)
        assert r.status_code == 400
        assert r.json()["error"].startswith("Invalid msgpack body")
        r = c.post("/scalars", content=msgspec.msgpack.encode([1, 2]), headers=MP)
        assert r.status_code == 400 and "Expected `object`" in r.json()["error"]
        empty = c.post("/literal", content=b"", headers=MP)  # defaults, as an empty JSON body
        assert empty.status_code == 200 and empty.text == "fast"
        assert c.post("/constrained", json={"n": 2}).json() == 4


@pytest.mark.parametrize("media", ["application/msgpack", "application/vnd.msgpack", "application/x-msgpack"])
def test_every_msgpack_name_is_accepted_and_answered_in_kind(typed, media):
    body = msgspec.msgpack.encode({"xs": [1], "d": {}})
    with httpx.Client(base_url=typed.url) as c:
        r = c.post("/containers", content=body, headers={"content-type": media, "accept": media})
    assert r.status_code == 200
    assert r.headers["content-type"] == media
    assert decode_msgpack(r.content) == {"xs": [1], "d": {}, "t": [1, "a"]}


@pytest.mark.parametrize(
    ("accept", "answer"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("application/msgpack", "application/msgpack"),
        ("application/json, application/msgpack", "application/json"),  # equal q: the first listed
        ("application/msgpack, application/json", "application/msgpack"),
        ("application/json;q=0.5, application/msgpack", "application/msgpack"),
        ("application/msgpack;q=0.2, */*;q=0.8", "application/json"),
        ("application/msgpack;q=0", "application/json"),
        ("text/html", "application/json"),  # nothing we can produce: JSON, not 406
        ("text/html, Application/MsgPack;q=0.1", "application/msgpack"),
        ("application/x-npy", "application/json"),  # .npy only for an array result
    ],
)
def test_accept_negotiation_with_q_values(typed, accept, answer):
    headers = {"accept": accept} if accept is not None else {}
    with httpx.Client(base_url=typed.url) as c:
        r = c.post("/scalars", json={"s": "x", "i": 1, "f": 0.5, "b": False}, headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == answer
    value = r.json() if answer == "application/json" else decode_msgpack(r.content)
    assert value == {"s": "x", "i": 1, "f": 0.5, "b": False}


def test_errors_stay_json_when_msgpack_is_asked_for(typed):
    with httpx.Client(base_url=typed.url) as c:
        r = c.post("/refuses", content=msgspec.msgpack.encode({"n": 3}), headers=MP)
        assert r.status_code == 400 and r.headers["content-type"] == "application/json"
        assert r.json()["error"] == "n must be even, got 3"
        r = c.post("/fails", json={}, headers={"accept": "application/msgpack"})
        assert r.status_code == 500 and r.json() == {"error": "Internal Server Error"}
        r = c.post("/scalars", content=b"x", headers={"content-type": "application/cbor"})
        assert r.status_code == 415 and "application/msgpack" in r.json()["error"]


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(12, dtype="float32").reshape(3, 4),
        np.arange(-5, 5, dtype="int64"),
        np.array([True, False, True]),
        np.arange(24, dtype="uint8").reshape(2, 3, 4),
        np.array([[3.5]], dtype="float64"),
        np.zeros((0, 3), dtype="int16"),
        np.arange(6, dtype=">i4").reshape(2, 3),  # big-endian in, little-endian on the wire
        np.arange(6, dtype="float32").reshape(2, 3).T,  # not contiguous
    ],
    ids=["f32-2d", "i64", "bool", "u8-3d", "f64-1x1", "empty", "big-endian", "transposed"],
)
def test_arrays_keep_dtype_and_shape_in_msgpack_and_npy(tensors, arr):
    with httpx.Client(base_url=tensors.url) as c:
        r = c.post("/double", content=encode_msgpack({"a": arr}), headers=MP)
        assert r.status_code == 200, r.text
        out = decode_msgpack(r.content)
        assert isinstance(out, np.ndarray)
        assert out.dtype == (arr * 2).dtype.newbyteorder("<") and out.shape == arr.shape
        np.testing.assert_array_equal(out, arr * 2)
        r = c.post("/double", content=encode_npy(arr), headers=NPY)
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy"
        out = decode_npy(r.content)
        assert out.dtype == (arr * 2).dtype.newbyteorder("<") and out.shape == arr.shape
        np.testing.assert_array_equal(out, arr * 2)
        np.testing.assert_array_equal(np.load(__import__("io").BytesIO(r.content)), arr * 2)  # numpy reads it


def test_npy_written_by_numpy_is_read_and_the_array_is_a_view_of_the_body(tensors):
    import io

    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype="float32").reshape(2, 3))
    with httpx.Client(base_url=tensors.url) as c:
        r = c.post("/double", content=buf.getvalue(), headers={"content-type": "application/x-npy"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"  # JSON by default
        assert r.json() == [[0, 2, 4], [6, 8, 10]]
        r = c.post("/viewed", content=encode_msgpack({"a": np.ones(1000)}), headers=MP)
        assert decode_msgpack(r.content) == {"owns": False, "writeable": False}  # no copy on decode


def test_array_results_inside_values_and_undeclared_ones(tensors):
    a = np.arange(4, dtype="float32").reshape(2, 2)
    with httpx.Client(base_url=tensors.url) as c:
        out = decode_msgpack(
            c.post("/describe", content=encode_msgpack({"a": a, "scale": 2}), headers=MP).content
        )
        assert out["dtype"] == "float32" and out["shape"] == [2, 2] and out["sum"] == 12.0
        assert out["copy"].dtype == np.float32
        np.testing.assert_array_equal(out["copy"], a * 2)
        r = c.post("/anything", json={"n": 4}, headers={"accept": "application/x-npy"})
        assert r.headers["content-type"] == "application/x-npy"
        np.testing.assert_array_equal(decode_npy(r.content), np.arange(4))
        r = c.post("/batched", content=encode_msgpack({"xs": np.arange(3)}), headers=MP)
        np.testing.assert_array_equal(decode_msgpack(r.content), np.arange(1, 4))


@pytest.mark.parametrize(
    ("body", "ctype", "status", "words"),
    [
        (encode_npy(np.ones(3)), "application/x-npy", 415, "single parameter is a numpy array"),
        (b"not npy at all", "application/x-npy", 400, "Invalid .npy body"),
        (encode_npy(np.ones(4))[:-8], "application/x-npy", 400, "needs 32"),
        (
            b"\x93NUMPY\x01\x00\x1e\x00{'descr': '|O', 'shape': (1,)}",
            "application/x-npy",
            400,
            "Invalid .npy body",
        ),
        (
            msgspec.msgpack.encode(
                {"a": msgspec.msgpack.Ext(NDARRAY_EXT, b"\x03<f4\x01" + b"\x05" + b"\0" * 7 + b"\0" * 8)}
            ),
            "application/msgpack",
            400,
            "array data is 8 bytes, but shape [5] of float32 needs 20",
        ),
        (
            msgspec.msgpack.encode({"a": msgspec.msgpack.Ext(NDARRAY_EXT, b"\x03<U4\x00")}),
            "application/msgpack",
            400,
            "not allowed",
        ),
        (
            msgspec.msgpack.encode({"a": msgspec.msgpack.Ext(9, b"")}),
            "application/msgpack",
            400,
            "extension type 9",
        ),
    ],
    ids=[
        "npy-to-non-array-api",
        "npy-garbage",
        "npy-short",
        "npy-object",
        "ext-short",
        "ext-str-dtype",
        "ext-unknown",
    ],
)
def test_bad_arrays_get_a_clear_error(tensors, body, ctype, status, words):
    route = "/describe" if status == 415 else "/double"
    with httpx.Client(base_url=tensors.url) as c:
        r = c.post(route, content=body, headers={"content-type": ctype})
        assert r.status_code == status, r.text
        assert words in r.json()["error"]
        assert c.post("/double", json={"a": [1]}).json() == [2]


def test_documents_list_the_media_types(tensors):
    with httpx.Client(base_url=tensors.url) as c:
        schema = c.get("/schema.json").json()
        docs = c.get("/docs.json").json()
    routes = {r["name"]: r for r in schema["routes"]}
    mp = ["application/msgpack", "application/vnd.msgpack", "application/x-msgpack"]
    assert routes["double"]["request_media_types"] == ["application/json", *mp, "application/x-npy"]
    assert routes["double"]["response_media_types"] == ["application/json", *mp, "application/x-npy"]
    assert routes["describe"]["request_media_types"] == ["application/json", *mp]
    assert routes["describe"]["response_media_types"] == ["application/json", *mp]
    assert routes["text"]["response_media_types"] == ["text/plain"]
    post = docs["paths"]["/double"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", *mp, "application/x-npy"}
    assert set(post["responses"]["200"]["content"]) == {"application/json", *mp, "application/x-npy"}
    assert set(docs["paths"]["/text"]["post"]["responses"]["200"]["content"]) == {"text/plain"}
    from openapi_spec_validator import validate

    validate(docs)


def test_sync_client_with_msgpack_codec(tensors):
    a = np.arange(10, dtype="float32")
    with SyncHTTPClient(tensors.url, codec="msgpack") as client:
        out = client.double(a=a)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        np.testing.assert_array_equal(out, a * 2)
        assert client.describe(a=a, scale=0.5)["sum"] == 22.5
        assert client.text(s="ab") == "AB"
    with SyncHTTPClient(tensors.url) as client:  # JSON by default: arrays come back as lists
        assert client.double(a=a.tolist()) == (a * 2).tolist()
    with pytest.raises(ValueError, match="codec"):
        SyncHTTPClient(tensors.url, codec="pickle")


def test_async_client_with_msgpack_codec(tensors):
    async def main():
        async with AsyncHTTPClient(tensors.url, codec="msgpack") as client:
            out = await client.double(a=np.arange(6, dtype="int64").reshape(2, 3))
            assert out.dtype == np.int64 and out.shape == (2, 3)
            assert (await client.make(n=4, dtype="uint8")).dtype == np.uint8
            return await client.call("describe", a=np.ones((2, 2)))

    assert asyncio.run(main())["shape"] == [2, 2]


def test_json_request_bodies_are_unchanged(typed):
    # The JSON path still answers exactly what it did: same bytes with and without an Accept header.
    body = json.dumps({"items": [{"name": "b", "price": 2.0}]})
    with httpx.Client(base_url=typed.url) as c:
        a = c.post("/sort_items", content=body, headers={"content-type": "application/json"})
        b = c.post("/sort_items", content=body, headers={"content-type": "application/json", "accept": "*/*"})
    assert a.content == b.content == b'[{"name":"b","price":2.0,"tags":[]}]'
