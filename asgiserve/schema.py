"""Documents about a service, built once at startup: ``/schema.json`` (BentoML's shape), ``/docs.json``
(OpenAPI 3.1, whose JSON Schema dialect is the one msgspec emits) and the offline docs page at ``/`` (a static
file, ``static/docs.html``, that reads ``schema.json`` in the browser)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from .codec import APICodec, _schema_hook
from .options import join_paths
from .service import APISpec

__all__ = ["INFRA_PATHS", "DocsPage", "Documented", "mount_docs", "moved_infra", "openapi", "service_schema"]


class Documented(Protocol):
    """What the documents need of an api (``handlers.APIHandler`` has it)."""

    route: str
    spec: APISpec
    codec: APICodec
    func: Callable[..., object]


INFRA_PATHS = {
    "/livez": "Liveness: the process is up.",
    "/readyz": "Readiness: 200 once the service and mounted apps started, 503 before and while draining.",
    "/healthz": "Health: the process is up.",
    "/metrics": "Prometheus metrics.",
    "/schema.json": "The service schema (apis, inputs, outputs).",
    "/docs.json": "This OpenAPI document.",
}

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "array", "items": {"type": "object"}}},
    "required": ["error"],
}


def service_schema(
    name: str, handlers: Sequence[Documented], mounts: Sequence[tuple[str, str] | tuple[str, str, str | None]]
) -> dict[str, Any]:
    """The ``/schema.json`` document: ``name``, ``type``, ``routes`` per api and ``paths``."""
    routes = []
    paths: dict[str, Any] = {}
    for h in handlers:
        routes.append(
            {
                "name": h.spec.name,
                "route": h.route,
                "batchable": h.spec.batchable,
                "input": _bentoml_files(h.codec.input_schema()),
                "output": _bentoml_files(h.codec.output_schema())
                if h.codec.output.kind == "file"
                else h.codec.output_schema(),
                "doc": (h.func.__doc__ or "").strip() or None,
                "is_task": h.spec.is_task,
                **_media_types(h),
            }
        )
        paths[h.route] = {"methods": ["POST"], "api": h.spec.name}
    for path in INFRA_PATHS:
        paths[path] = {"methods": ["GET", "HEAD"], "infra": True}
    for prefix, mount_name, *docs in mounts:
        paths[prefix] = {"mounted": True, "name": mount_name}
        if docs and docs[0]:
            paths[prefix]["docs"] = docs[0]  # the mounted app's own docs page, linked from ``/``
    return {"name": name, "type": "service", "routes": routes, "paths": paths}


def _bentoml_files(schema: Any) -> Any:
    """File values as BentoML's schema writes them (``"type": "file"``), which its client relies on."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and schema.get("format") == "binary":
            return {**schema, "type": "file"}
        return {k: _bentoml_files(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_bentoml_files(v) for v in schema]
    return schema


def _request_content(h: Documented, ref: dict[str, Any]) -> dict[str, Any]:
    content = {"application/json": {"schema": ref}}
    if h.codec.file_params:  # files upload as form parts named after the parameters
        content["multipart/form-data"] = {"schema": ref}
    content.update(_binary_content(h.codec.request_media_types(), ref))
    return content


def _media_types(h: Documented) -> dict[str, list[str]]:
    """The request and response media types of an api, as ``/schema.json`` lists them."""
    return {
        "request_media_types": h.codec.request_media_types(),
        "response_media_types": h.codec.response_media_types(),
    }


def _binary_content(media_types: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI content entries for the binary media types (msgpack holds the JSON schema's values)."""
    out: dict[str, Any] = {}
    for media in media_types:
        if "msgpack" in media:
            out[media] = {"schema": schema}
        elif media == "application/x-npy":
            out[media] = {"schema": {"type": "string", "format": "binary"}}
    return out


def openapi(name: str, doc: str | None, handlers: Sequence[Documented]) -> dict[str, Any]:
    """An OpenAPI 3.1 document for the apis and infra routes."""
    types = [h.codec.schema_type for h in handlers]
    outputs = [h.codec.output.schema_type for h in handlers if h.codec.output.kind == "json"]
    refs, components = msgspec.json.schema_components(
        types + outputs, schema_hook=_schema_hook, ref_template="#/components/schemas/{name}"
    )
    components["Error"] = _ERROR_SCHEMA
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    paths: dict[str, Any] = {}
    out_refs = iter(refs[len(types) :])
    for h, in_ref in zip(handlers, refs):
        if h.codec.spec_input is not None:  # an input_spec model: its own schema, inlined
            in_ref = h.codec.input_schema()
        kind = h.codec.output.kind
        media = h.codec.output.content_type.decode().split(";")[0]
        if kind == "json":
            out_schema: dict[str, Any] = next(out_refs)
        elif kind == "text":
            out_schema = {"type": "string"}
        elif kind in ("bytes", "file"):
            out_schema = {"type": "string", "format": "binary"}
        elif kind == "custom":
            out_schema = h.codec.output_schema()
            out_schema.pop("is_stream")
            out_schema.pop("media_type")
        else:
            out_schema = {}
        paths[h.route] = {
            "post": {
                "operationId": h.spec.name,
                "summary": (h.func.__doc__ or h.spec.name).strip().splitlines()[0],
                "requestBody": {"required": False, "content": _request_content(h, in_ref)},
                "responses": {
                    "200": {
                        "description": "Success",
                        "content": {
                            media: {"schema": out_schema},
                            **_binary_content(h.codec.response_media_types(), out_schema),
                        },
                    },
                    "400": {"description": "Invalid input", **err},
                    "429": {"description": "Over max_concurrency", **err},
                    "500": {"description": "The api raised", **err},
                    "503": {"description": "Not ready or draining", **err},
                    "504": {"description": "Timed out", **err},
                },
            }
        }
    for path, summary in INFRA_PATHS.items():
        paths[path] = {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": name, "version": "1.0.0", "description": (doc or "").strip()},
        "paths": paths,
        "components": {"schemas": components},
    }


class DocsPage:
    """The docs page at ``/``: one static file of HTML, CSS and JS (``static/docs.html``) that builds a form
    per api from ``schema.json`` in the browser, so it is the same bytes for every service and caches well."""

    __slots__ = ("body", "etag")

    def __init__(self) -> None:
        self.body = (Path(__file__).parent / "static" / "docs.html").read_bytes()
        self.etag = b'"%s"' % hashlib.sha256(self.body).hexdigest()[:20].encode()

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Its caching headers: revalidated after an hour (the ETag turns that into a 304)."""
        return [(b"cache-control", b"public, max-age=3600"), (b"etag", self.etag)]

    def fresh(self, request_headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """True when the request's ``If-None-Match`` names this page (answer 304)."""
        for name, value in request_headers:
            if name == b"if-none-match":
                return value.strip() == b"*" or self.etag in [v.strip() for v in value.split(b",")]
        return False


def mount_docs(prefix: str, app: object) -> str | None:
    """The docs page of a mounted app, when it has one (FastAPI's ``docs_url``)."""
    url = getattr(app, "docs_url", None)
    return prefix.rstrip("/") + url if isinstance(url, str) and url.startswith("/") else None


def moved_infra(paths: dict[str, object], prefix: str, livez: str, readyz: str) -> dict[str, object]:
    """OpenAPI ``paths`` with the infra routes at their prefixed or configured places."""
    moved = {"/livez": livez, "/readyz": readyz}
    out: dict[str, object] = {}
    for path, item in paths.items():
        if path in INFRA_PATHS and path != "/schema.json":
            out[join_paths(prefix, path)] = item
            if path in moved and moved[path] != join_paths(prefix, path):
                out[moved[path]] = item
        else:
            out[path] = item
    return out
