"""The server side of files over real HTTP: multipart decoding (strict), uploads' lifetime, file outputs."""

from __future__ import annotations

import pathlib

import httpx
import pytest

import asgiserve
from asgiserve.multipart import parse_form
from tests.client_helpers import start_svc
from tests.conftest import RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS)


@pytest.fixture
def server(run_server, runner):
    return start_svc(run_server, runner)


def form(boundary: bytes, body: bytes) -> dict[str, object]:
    return {
        "content": body,
        "headers": {"content-type": "multipart/form-data; boundary=" + boundary.decode()},
    }


def test_upload_is_a_temporary_file_removed_after_the_request(server, runner):
    files = {"doc": ("report.txt", b"hello upload", "text/plain")}
    r = httpx.post(server.url + "/inspect_upload", files=files, data={"meta": '{"k": [1, 2]}'})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["name"] == "report.txt" and out["size"] == 12 and out["meta"] == {"k": [1, 2]}
    assert not pathlib.Path(out["path"]).exists()
    # Unsafe client file names never escape the temporary folder.
    files = {"doc": ("../../etc/pass wd", b"x", "text/plain")}
    out = httpx.post(server.url + "/inspect_upload", files=files).json()
    assert out["name"] == "pass wd" and "/etc/" not in out["path"]


def test_list_of_files_bytes_and_plain_fields(server, runner):
    files = [("docs", ("a.txt", b"A")), ("docs", ("b.txt", b"B")), ("docs", ("c.txt", b"C"))]
    r = httpx.post(server.url + "/join_uploads", files=files, data={"sep": "-"})
    assert r.status_code == 200 and r.text == "A-B-C"
    # An HTML form sends strings unquoted; BentoML's client sends them as JSON strings: both work.
    r = httpx.post(server.url + "/join_uploads", files=files, data={"sep": '"+"'})
    assert r.text == "A+B+C"
    blob = bytes(range(256)) * 10
    r = httpx.post(server.url + "/blob_size", files={"blob": ("b.bin", blob)}, data={"label": "x"})
    assert r.json() == {"size": 2560, "label": "x", "head": [0, 1, 2, 3]}
    # bytes parameters also take base64 in JSON, which is what the client sends for bytes values.
    with asgiserve.SyncHTTPClient(server.url) as client:
        assert client.blob_size(blob=b"\x01\x02\x03") == {"size": 3, "label": "", "head": [1, 2, 3]}
        assert (
            client.join_uploads(docs=[pathlib.Path(__file__)], sep="") == pathlib.Path(__file__).read_text()
        )


@pytest.mark.parametrize(
    "ctype, body, message",
    [
        ("multipart/form-data", b"--x\r\n\r\n", "boundary"),
        ("multipart/form-data; boundary=", b"", "boundary"),
        ("multipart/form-data; boundary=" + "b" * 71, b"", "boundary"),
        ("multipart/form-data; boundary=xx", b"nothing here", "first boundary"),
        (
            "multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; name="doc"\r\n\r\nabc',
            "closing",
        ),
        ("multipart/form-data; boundary=xx", b"--xx\r\n\r\nabc\r\n--xx--\r\n", "Content-Disposition"),
        (
            "multipart/form-data; boundary=xx",
            b"--xx\r\nContent-Disposition: attachment; name=a\r\n\r\n1\r\n--xx--",
            "form-data",
        ),
        (
            "multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; filename="a"\r\n\r\n1\r\n--xx--',
            "field name",
        ),
        (
            "multipart/form-data; boundary=xx",
            b"--xx\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\n1\r\n--xx--",
            "header",
        ),
        (
            "multipart/form-data; boundary=xx",
            b"--xx\nContent-Disposition: form-data; name=a\n\n1\n--xx--",
            "boundary line",
        ),
        (
            "multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; name="meta"\r\n\r\n{}\r\n--xx--',
            "doc",
        ),
    ],
)
def test_malformed_multipart_is_a_clear_400(server, runner, ctype, body, message):
    r = httpx.post(server.url + "/inspect_upload", content=body, headers={"content-type": ctype})
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]
    # The server keeps serving.
    assert httpx.post(server.url + "/add", json={"a": 1}).json() == 1


def test_multipart_duplicates_unknown_fields_and_non_file_apis(server, runner):
    files = {"doc": ("a.txt", b"A")}
    r = httpx.post(server.url + "/inspect_upload", files=files, data={"meta": "{}", "extra": "1"})
    assert r.status_code == 400 and "extra" in r.json()["error"]
    body = (
        b'--b\r\nContent-Disposition: form-data; name="doc"; filename="a"\r\n\r\nA\r\n'
        b'--b\r\nContent-Disposition: form-data; name="doc"; filename="b"\r\n\r\nB\r\n--b--\r\n'
    )
    r = httpx.post(server.url + "/inspect_upload", **form(b"b", body))
    assert r.status_code == 400 and "more than once" in r.json()["error"]
    # A form for an api without file parameters still decodes its fields.
    r = httpx.post(server.url + "/add", files={"a": (None, "2")}, data={"b": "3"})
    assert r.status_code == 200 and r.json() == 5


def test_file_outputs_stream_from_disk(server, runner):
    with httpx.stream("POST", server.url + "/big_file", json={"megabytes": 3}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-disposition"] == 'attachment; filename="big.bin"'
        assert int(r.headers["content-length"]) == 3 * 1024 * 1024
        chunks = list(r.iter_raw())
    assert b"".join(chunks) == bytes(range(256)) * (4096 * 3)
    files = {"img": ("pic.png", b"\x89PNG")}
    r = httpx.post(server.url + "/generate", files=files)
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'attachment; filename="out-pic.png"'
    with asgiserve.SyncHTTPClient(server.url) as client:
        big = client.big_file(megabytes=2)
        assert big.name == "big.bin" and big.stat().st_size == 2 * 1024 * 1024


def test_schema_marks_file_parameters_the_bentoml_way(server, runner):
    schema = httpx.get(server.url + "/schema.json").json()
    routes = {r["name"]: r for r in schema["routes"]}
    assert routes["generate"]["input"]["properties"]["img"] == {"type": "file", "format": "binary"}
    assert routes["generate"]["output"]["type"] == "file"
    assert routes["join_uploads"]["input"]["properties"]["docs"]["items"]["type"] == "file"
    assert routes["summarize"]["output"]["type"] == "string"
    # The OpenAPI document offers the form upload for file apis and stays valid.
    from openapi_spec_validator import validate

    doc = httpx.get(server.url + "/docs.json").json()
    validate(doc)
    assert "multipart/form-data" in doc["paths"]["/generate"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" not in doc["paths"]["/add"]["post"]["requestBody"]["content"]


@pytest.mark.parametrize(
    "host", ["localhost", "10.0.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "100.64.0.1"]
)
def test_private_addresses_are_refused(runner, host):
    import asyncio

    from asgiserve.downloads import _resolve
    from asgiserve.errors import BadRequest

    with pytest.raises(BadRequest, match="non-public address"):
        asyncio.run(_resolve(host, 80, False))
    assert asyncio.run(_resolve(host, 80, True))
    assert asyncio.run(_resolve("8.8.8.8", 80, False)) == "8.8.8.8"


def test_parse_form_bytes_level(runner):
    body = (
        b"preamble\r\n--zz\r\n"
        b'Content-Disposition: form-data; name="f"; filename="a \\"q\\".txt"\r\nContent-Type: text/plain\r\n\r\n'
        b"line1\r\n--z not a boundary\r\n"
        b'\r\n--zz\r\nContent-Disposition: form-data; name="g"\r\n\r\n\r\n--zz--\r\nepilogue'
    )
    parts = parse_form(body, b"multipart/form-data; boundary=zz")
    assert [(p.name, p.filename, p.content_type, p.data) for p in parts] == [
        ("f", 'a "q".txt', "text/plain", b"line1\r\n--z not a boundary\r\n"),
        ("g", None, None, b""),
    ]
    quoted = parse_form(
        b'--a b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--a b--',
        b'multipart/form-data; boundary="a b"',
    )
    assert quoted[0].data == b"1"


def multipart_body(fields: list[tuple[str, bytes, str | None]]) -> bytes:
    """A form body from ``(name, value, content type)`` plain fields (no file names)."""
    out = b""
    for name, value, ctype in fields:
        out += b'--b\r\nContent-Disposition: form-data; name="%s"\r\n' % name.encode()
        if ctype:
            out += b"Content-Type: %s\r\n" % ctype.encode()
        out += b"\r\n" + value + b"\r\n"
    return out + b"--b--\r\n"


@pytest.mark.parametrize(
    "value, message",
    [
        (b"hello", "expected a file upload"),
        (b"\xff\xfehello", "UTF-8"),
        (b"ftp://example.com/x", "expected a file upload"),
    ],
)
def test_plain_field_for_a_path_parameter_must_be_a_url(server, runner, value, message):
    r = httpx.post(server.url + "/inspect_upload", **form(b"b", multipart_body([("doc", value, None)])))
    assert r.status_code == 400, r.text
    assert "'doc'" in r.json()["error"] and message in r.json()["error"]


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://example.com:99999/x", "invalid port"),
        ("http://[::1/x", "invalid URL"),
        ("http://" + "a" * 64 + ".example.com/x", "invalid host name"),
        ("http://exa..mple.com/x", "invalid host name"),
    ],
)
def test_malformed_download_urls_are_a_400(server, runner, url, message):
    # As a multipart field and as JSON: both reach the download and both are the caller's mistake.
    r = httpx.post(
        server.url + "/inspect_upload", **form(b"b", multipart_body([("doc", url.encode(), None)]))
    )
    assert r.status_code == 400, r.text
    assert message in r.json()["error"] and url in r.json()["error"]
    r = httpx.post(server.url + "/inspect_upload", json={"doc": url})
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]
    with asgiserve.SyncHTTPClient(server.url) as client:
        with pytest.raises(asgiserve.InvalidArgument, match=message):
            client.inspect_upload(doc=url)


def test_form_fields_repeats_lists_and_text(server, runner):
    fields = [
        ("tags", b"a", None),
        ("tags", b"123", None),
        ("nums", b"1", None),
        ("nums", b"2", "text/plain"),
        ("note", b"123", None),
        ("either", b"42", None),
        ("count", b"7", None),
    ]
    r = httpx.post(server.url + "/form_fields", **form(b"b", multipart_body(fields)))
    assert r.status_code == 200, r.text
    assert r.json() == {"tags": ["a", "123"], "nums": [1, 2], "note": "123", "either": "42", "count": 7}
    # One JSON array is the whole list (BentoML's client); a part declared JSON keeps its JSON value.
    fields = [("nums", b"[3, 4]", None), ("note", b"null", "application/json"), ("tags", b'["x"]', None)]
    r = httpx.post(server.url + "/form_fields", **form(b"b", multipart_body(fields)))
    assert r.status_code == 200, r.text
    assert r.json() == {"tags": ["x"], "nums": [3, 4], "note": None, "either": 0, "count": 0}
    # A quoted JSON string is unquoted, a repeated non-list field is still refused.
    fields = [("note", b'"hi"', None), ("count", b"1", None), ("count", b"2", None)]
    r = httpx.post(server.url + "/form_fields", **form(b"b", multipart_body(fields)))
    assert r.status_code == 400 and "'count' given more than once" in r.json()["error"]
    r = httpx.post(server.url + "/form_fields", **form(b"b", multipart_body(fields[:2])))
    assert r.json()["note"] == "hi"


def test_large_upload_is_written_off_the_loop_and_kept_whole(server, runner):
    blob = bytes(range(256)) * 4096 * 3  # 3 MiB, past the size written on the loop
    files = [("docs", ("a.bin", blob)), ("docs", ("b.txt", b"small"))]
    r = httpx.post(server.url + "/inspect_upload", files={"doc": ("big.bin", blob)})
    assert r.status_code == 200 and r.json()["size"] == len(blob)
    r = httpx.post(server.url + "/join_uploads", files=files[1:] * 2, data={"sep": "+"})
    assert r.text == "small+small"
