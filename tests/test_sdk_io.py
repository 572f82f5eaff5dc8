"""Rich api IO over real HTTP, on our server (both parsers) and uvicorn: pydantic models nested two levels
with field errors, Field defaults, input_spec/output_spec, annotated_types limits, validators, PIL images,
pandas DataFrames, numpy arrays, torch tensors and IODescriptor models."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

import asgiserve
from tests.conftest import RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS)

MODULE = "tests.apps.sdk_io"
PERSON = {"name": "ann", "age": 40, "address": {"city": "Oslo", "zip": "01234"}}


@pytest.fixture
def server(run_server, runner):
    target = f"{MODULE}:app" if runner == "uvicorn" else f"{MODULE}:IOSvc"
    return run_server(runner, target)


def post(server, api: str, **kw: object) -> httpx.Response:
    return httpx.post(f"{server.url}/{api}", timeout=30, **kw)  # type: ignore[arg-type]


def test_pydantic_model_nested_two_levels(server, runner):
    team = {"lead": PERSON, "members": [PERSON, PERSON]}
    r = post(server, "team_info", json={"team": team, "note": "n"})
    assert r.status_code == 200, r.text
    assert r.json() == {"lead_city": "Oslo", "members": 2, "note": "n"}
    # A field error two levels down is a 400 naming the field, with its full location.
    bad = {"lead": {**PERSON, "address": {"city": "Oslo", "zip": "12"}}}
    r = post(server, "team_info", json={"team": bad})
    assert r.status_code == 400
    body = r.json()
    assert body["error"].endswith("- at `$.team.lead.address.zip`"), body
    assert "pattern" in body["error"]
    assert body["detail"][0]["loc"] == ["body", "team", "lead", "address", "zip"]
    missing = {"lead": {"name": "x", "age": 1, "address": {"zip": "12345"}}}
    r = post(server, "team_info", json={"team": missing})
    assert r.status_code == 400 and r.json()["error"] == "Field required - at `$.team.lead.address.city`"
    r = post(server, "team_info", json={"team": {**team, "lead": {**PERSON, "age": -1}}})
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["body", "team", "lead", "age"]
    # The model's own parameters and the others keep msgspec's errors.
    r = post(server, "team_info", json={"team": team, "note": 5})
    assert r.status_code == 400 and r.json()["error"] == "Expected `str`, got `int` - at `$.note`"
    r = post(server, "team_info", json={"note": "x"})
    assert r.status_code == 400 and "team" in r.json()["error"]
    # And the server keeps serving.
    assert post(server, "team_info", json={"team": team}).status_code == 200


def test_field_defaults_constraints_and_schema(server, runner):
    assert post(server, "greet").text == "hello world"
    assert (
        post(server, "greet", json={"name": "bo", "times": 2, "tags": ["a", "b"]}).text
        == "hello bo hello bo a,b"
    )
    r = post(server, "greet", json={"times": 9})
    assert r.status_code == 400 and r.json()["error"].endswith("- at `$.times`")
    assert "less than or equal to 3" in r.json()["error"]
    assert (
        post(server, "nullable").text == "None"
        and post(server, "nullable", json={"temperature": 0.5}).text == "0.5"
    )
    routes = {r["name"]: r for r in httpx.get(server.url + "/schema.json").json()["routes"]}
    greet = routes["greet"]["input"]
    assert greet["properties"]["name"]["description"] == "Who to greet"
    assert greet["properties"]["name"]["default"] == "world" and greet["required"] == []
    assert greet["properties"]["times"]["maximum"] == 3
    team = routes["team_info"]["input"]
    assert team["required"] == ["team"]
    assert team["properties"]["team"]["properties"]["lead"]["properties"]["address"]["required"] == [
        "city",
        "zip",
    ]
    assert routes["summarize"]["input"]["required"] == ["name", "age", "address"]
    assert routes["make_person"]["output"]["properties"]["address"]["title"] == "Address"
    assert routes["tensor_double"]["input"]["properties"]["t"]["description"] == "A 2x2 float32 tensor"
    # OpenAPI carries the same schemas, and the document is valid.
    from openapi_spec_validator import validate

    doc = httpx.get(server.url + "/docs.json").json()
    validate(doc)
    assert "team" in str(doc["components"]["schemas"]["TeamInfoInput"])


def test_pydantic_outputs_and_client(server, runner):
    r = post(server, "make_person", json={"name": "x", "city": "Rome"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"name": "x", "age": 30, "address": {"city": "Rome", "zip": "12345"}}
    assert [p["age"] for p in post(server, "people", json={"n": 3}).json()] == [0, 1, 2]
    with asgiserve.SyncHTTPClient(server.url) as client:
        assert client.team_info(team={"lead": PERSON})["lead_city"] == "Oslo"
        assert client.summarize(**PERSON) == {"name": "ANN", "city": "Oslo"}


def test_input_spec_and_output_spec(server, runner):
    r = post(server, "summarize", json=PERSON)
    assert r.status_code == 200 and r.json() == {"name": "ANN", "city": "Oslo"}
    r = post(server, "summarize", json={**PERSON, "address": {"city": "Oslo"}})
    assert r.status_code == 400 and r.json()["error"] == "Field required - at `$.address.zip`"
    r = post(server, "summarize", json={"name": "x"})
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["body", "age"]
    r = post(server, "spec_kwargs", json=PERSON)
    assert r.json() == {"keys": ["address", "age", "name"], "city": "Oslo"}
    # A result that does not fit output_spec is the api's fault: a 500, logged.
    r = post(server, "bad_output")
    assert r.status_code == 500 and r.json() == {"error": "Internal Server Error"}


def test_annotated_types_limits(server, runner):
    assert post(server, "limits", json={"prompt": "abc"}).text == "abc@1.0"
    r = post(server, "limits", json={"prompt": "abcdef"})
    assert r.status_code == 400 and r.json()["error"].endswith("- at `$.prompt`")
    r = post(server, "limits", json={"prompt": "a", "temperature": 2})
    assert r.status_code == 400 and "< 2" in r.json()["error"]


def png(size: tuple[int, int] = (6, 3)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "blue").save(buf, format="PNG")
    return buf.getvalue()


def test_pil_images_in_and_out(server, runner):
    r = post(server, "image_info", files={"image": ("a.png", png(), "image/png")}, data={"scale": "2"})
    assert r.status_code == 200, r.text
    assert r.json() == {"size": [6, 3], "mode": "RGB", "format": "PNG", "scale": 2}
    # ContentType("image/*"): a text upload is refused, naming the field; so is a file that is no image.
    r = post(server, "image_info", files={"image": ("a.txt", b"hello", "text/plain")})
    assert (
        r.status_code == 400
        and r.json()["error"] == "Invalid content type text/plain, expected image/* - at `$.image`"
    )
    r = post(server, "image_info", files={"image": ("a.png", b"not an image", "image/png")})
    assert r.status_code == 400 and "Expected an image file" in r.json()["error"]
    truncated = png((64, 64))[:-40]  # a PNG whose head PIL reads, and whose pixels are cut short
    r = post(server, "image_info", files={"image": ("t.png", truncated, "image/png")})
    assert r.status_code == 400 and "Expected an image file" in r.json()["error"], r.text
    # Outputs: PNG unless the image has a format of its own.
    r = post(server, "image_resize", files={"image": ("a.png", png())}, data={"height": "2", "width": "5"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (5, 2)
    r = post(server, "image_jpeg", json={"width": 7})
    assert r.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(r.content)).format == "JPEG"
    routes = {r["name"]: r for r in httpx.get(server.url + "/schema.json").json()["routes"]}
    assert routes["image_info"]["input"]["properties"]["image"]["type"] == "file"


def test_content_type_on_paths(server, runner):
    r = post(server, "text_upload", files={"doc": ("n.txt", b"notes", "text/plain")})
    assert r.status_code == 200 and r.text == "notes"
    r = post(server, "text_upload", files={"doc": ("n.bin", b"\x00", "application/octet-stream")})
    assert r.status_code == 400 and "expected text/*" in r.json()["error"]


def test_dataframes(server, runner):
    rows = [{"a": 1, "b": 2, "ignored": 0}, {"a": 3, "b": 4}]
    r = post(server, "frame_sum", json={"df": rows})
    assert r.status_code == 200, r.text
    assert r.json() == [{"a": 1, "b": 2, "total": 3}, {"a": 3, "b": 4, "total": 7}]
    r = post(server, "frame_sum", json={"df": {"a": [1]}})
    assert r.status_code == 400 and "records" in r.json()["error"] and r.json()["error"].endswith("`$.df`")
    r = post(server, "frame_columns", json={"df": {"x": [1, 2], "y": [3, 4]}})
    assert r.json() == {"x": [2, 4], "y": [6, 8]}


def test_arrays_and_tensors(server, runner):
    r = post(server, "array_info", json={"x": [[1, 2, 3, 4], [5, 6, 7, 8]]})
    assert r.json() == {"shape": [2, 4], "dtype": "float32", "sum": 36.0}
    # Shape((-1, 4)) reshapes as BentoML does: 8 values make two rows; 6 do not fit.
    assert post(server, "array_info", json={"x": list(range(8))}).json()["shape"] == [2, 4]
    r = post(server, "array_info", json={"x": list(range(6))})
    assert r.status_code == 400 and r.json()["error"].startswith("Expected an array of shape (-1, 4)")
    r = post(server, "array_info", json={"x": ["a", "b", "c", "d"]})
    assert r.status_code == 400 and r.json()["error"].endswith("- at `$.x`")
    r = post(server, "tensor_double", json={"t": [[1, 2], [3, 4]]})
    assert r.status_code == 200 and r.json() == [[2.0, 4.0], [6.0, 8.0]]
    r = post(server, "tensor_double", json={"t": [1, 2, 3]})
    assert r.status_code == 400 and "shape (2, 2)" in r.json()["error"]
    assert post(server, "tensor_double", json={}).status_code == 400


def test_iodescriptor_models(server, runner):
    r = post(server, "features", json={"f": {"x": [1, 2, 3, 4], "label": "ok"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"x": [[10.0, 20.0], [30.0, 40.0]], "label": "OK"}
    r = post(server, "features", json={"f": {"x": [1, 2, 3]}})
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["body", "f", "x"]
    r = post(server, "features_spec", json={"x": [[1, 2]]})
    assert r.json() == {"shape": [1, 2], "dtype": "float32", "label": "none"}
    assert post(server, "half", json={"h": {"data": [1, 2]}}).text == "float16"
