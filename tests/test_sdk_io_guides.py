"""BentoML's guide examples for IO types and the inference context, run with only the import changed
(``tests/apps/sdk_io_guides.py``), called over real HTTP on our server; the context example under uvicorn too."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.conftest import RUNNERS

MODULE = "tests.apps.sdk_io_guides"


@pytest.fixture
def serve(run_server):
    def start(name: str, runner: str = "asgiserve"):
        return run_server(runner, f"{MODULE}:{name}")

    return start


def post(server, api: str, **kw: object) -> httpx.Response:
    return httpx.post(f"{server.url}/{api}", timeout=30, **kw)  # type: ignore[arg-type]


def image_bytes(fmt: str, size: tuple[int, int] = (8, 5)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "green").save(buf, format=fmt)
    return buf.getvalue()


def test_standard_types_with_field_and_nullable(serve):
    s = serve("LanguageModel")
    assert post(s, "generate", json={"prompt": "a b c", "max_tokens": 2}).text == "a@0.0 b@0.0 "
    r = post(s, "generate", json={})
    assert r.status_code == 400 and "prompt" in r.json()["error"]
    props = httpx.get(s.url + "/schema.json").json()["routes"][0]["input"]["properties"]
    assert (
        props["temperature"]["description"].startswith("A sampling temperature")
        and props["max_tokens"]["default"] == 1000
    )
    s = serve("NullableLanguageModel")
    assert post(s, "generate", json={"prompt": 3}).text == "3 None None"
    assert post(s, "generate", json={"prompt": 3, "temperature": 0.5}).text == "3 0.5 None"


def test_field_examples_on_an_array(serve):
    s = serve("IrisExample")
    assert post(s, "classify", json={"input": [[0.1, 0.4, 0.2, 1.0]]}).json() == [[0.2, 0.8, 0.4, 2.0]]
    props = httpx.get(s.url + "/schema.json").json()["routes"][0]["input"]["properties"]
    assert props["input"]["examples"] == [[0.1, 0.4, 0.2, 1.0]]


def test_pydantic_model_parameter_and_top_level_input_spec(serve):
    params = {"prompt": "Buy", "industry": "tea", "target_audience": "all"}
    for name in ("AdsWriter", "AdsWriterTopLevel"):
        s = serve(name)
        body = {"params": params} if name == "AdsWriter" else params
        r = post(s, "generate", json=body)
        assert r.status_code == 200 and r.text == "Buy for all in tea at 0.0", r.text
        bad = {"params": {"prompt": "x"}} if name == "AdsWriter" else {"prompt": "x"}
        r = post(s, "generate", json=bad)
        assert r.status_code == 400 and "industry" in r.json()["error"]


def test_iodescriptor_with_a_typed_array(serve):
    s = serve("DescriptorService")
    assert post(s, "mean", json={"params": {"data": [1, 2, 3]}}).json() == 2.0


def test_files_with_content_types(serve):
    s = serve("WhisperX")
    r = post(s, "to_text", files={"audio": ("a.mp3", b"ID3...", "audio/mp3")})
    assert r.status_code == 200 and r.text == "6 bytes of audio"
    r = post(s, "to_text", files={"audio": ("a.wav", b"RIFF", "audio/wav")})
    assert r.status_code == 400 and "expected audio/mp3" in r.json()["error"]
    s = serve("Vits")
    r = post(s, "to_speech", json={"text": "hi"})
    assert r.status_code == 200 and r.content == b"hihi" and r.headers["content-type"] == "audio/mpeg"
    s = serve("AppendStringToFile")
    r = post(
        s,
        "append_string_to_eof",
        files={"txt_file": ("t.txt", b"one", "text/plain")},
        data={"input_string": "+two"},
    )
    assert r.status_code == 200 and r.text == "one+two" and r.headers["content-type"].startswith("text/plain")


def test_tensor_and_dataframe(serve):
    s = serve("IrisTensor")
    assert post(s, "classify", json={"input": [[0.1, 0.9, 0.2, 0.3]]}).json() == [1]
    r = post(s, "classify", json={"input": [[1, 2]]})
    assert r.status_code == 400 and "(1, 4)" in r.json()["error"]
    s = serve("IrisTabular")
    rows = [{"petal_length": 5, "petal_width": 1}, {"petal_length": 1, "petal_width": 2}]
    assert post(s, "classify", json={"input": rows}).json() == 1


def test_images(serve):
    s = serve("ImageResize")
    r = post(
        s,
        "generate",
        files={"image": ("x.png", image_bytes("PNG"), "image/png")},
        data={"height": "3", "width": "2"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (3, 2)  # the guide passes (height, width) as PIL's size
    s = serve("MnistPredictor")
    assert post(s, "infer", files={"input": ("d.jpg", image_bytes("JPEG"), "image/jpeg")}).json() == 8
    r = post(s, "infer", files={"input": ("d.png", image_bytes("PNG"), "image/png")})
    assert r.status_code == 400
    s = serve("ImageProcessingService")
    meta = '{"description": "a field", "timestamp": "noon"}'
    r = post(s, "process_image", files={"image": ("x.png", image_bytes("PNG"))}, data={"metadata": meta})
    assert r.status_code == 200, r.text
    assert r.json() == {"size": [8, 5], "description": "a field", "at": "noon"}


def test_validation_with_annotated_types(serve):
    s = serve("LLMPredictor")
    assert post(s, "predict", json={"prompt": "ab", "temperature": 1, "max_tokens": 200}).json() == 202
    for bad, field in (
        ({"prompt": "x" * 1001, "temperature": 1, "max_tokens": 100}, "prompt"),
        ({"prompt": "x", "temperature": 2, "max_tokens": 100}, "temperature"),
        ({"prompt": "x", "temperature": 1, "max_tokens": 150}, "max_tokens"),
    ):
        r = post(s, "predict", json=bad)
        assert r.status_code == 400 and r.json()["error"].endswith(f"`$.{field}`"), r.text


@pytest.mark.parametrize("runner", RUNNERS)
def test_inference_context_example(serve, runner):
    s = serve("summarization_app" if runner == "uvicorn" else "Summarization", runner)
    r = post(s, "summarize", json={"text": "A long text to summarize"}, headers={"X-Suffix": "!"})
    assert r.status_code == 202 and r.text == "A long tex"
    assert r.headers["x-custom-header"] == "value"
    assert r.headers["set-cookie"] == "key=value; Path=/summarize; Secure; HttpOnly; SameSite=None"
