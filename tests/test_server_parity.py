"""The foundation's apps answer the same on asgiserve (both parsers) as on uvicorn: status, type, body."""

from __future__ import annotations

import httpx
import pytest

REQUESTS = [
    ("GET", "/livez", None),
    ("GET", "/readyz", None),
    ("GET", "/healthz", None),
    ("GET", "/schema.json", None),
    ("GET", "/docs.json", None),
    ("GET", "/", None),
    ("GET", "/nope", None),
    ("HEAD", "/livez", None),
    ("POST", "/livez", None),
    ("GET", "/summarize", None),
    ("POST", "/summarize", {"text": "Cats are great. Dogs are loyal. The sky is blue."}),
    ("POST", "/summarize", b""),
    ("POST", "/summarize", {"text": 5}),
    ("POST", "/summarize", {"text": "x", "extra": 1}),
    ("POST", "/summarize", b"{not json"),
    ("POST", "/keywords", {"text": "apple banana apple cherry banana apple", "top": 2}),
    ("POST", "/stream_summary", {"text": "One. Two. Three."}),
]


def answer(url: str, method: str, path: str, payload: object) -> tuple[int, str | None, bytes]:
    if isinstance(payload, bytes):
        r = httpx.request(method, url + path, content=payload, headers={"content-type": "application/json"})
    else:
        r = httpx.request(method, url + path, json=payload)
    return r.status_code, r.headers.get("content-type"), r.content


@pytest.mark.parametrize("ours", ["asgiserve", "asgiserve-h11"])
def test_same_answers_as_uvicorn(run_server, ours):
    reference = run_server("uvicorn", "summarizer:app")
    server = run_server(ours, "summarizer:Summarization", "--no-access-log")
    for method, path, payload in REQUESTS:
        expected = answer(reference.url, method, path, payload)
        got = answer(server.url, method, path, payload)
        assert got == expected, (method, path)
