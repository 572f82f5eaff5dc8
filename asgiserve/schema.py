"""Documents about a service, built once at startup: ``/schema.json`` (BentoML's shape), ``/docs.json``
(OpenAPI 3.1, whose JSON Schema dialect is the one msgspec emits) and the offline docs page at ``/``."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

from .codec import APICodec, _schema_hook
from .service import APISpec

__all__ = ["INFRA_PATHS", "Documented", "docs_page", "openapi", "service_schema"]


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
    name: str, handlers: Sequence[Documented], mounts: list[tuple[str, str]]
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
    for prefix, mount_name in mounts:
        paths[prefix] = {"mounted": True, "name": mount_name}
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
    types = [h.codec.input_type for h in handlers]
    outputs = [h.codec.output.schema_type for h in handlers if h.codec.output.kind == "json"]
    refs, components = msgspec.json.schema_components(
        types + outputs, schema_hook=_schema_hook, ref_template="#/components/schemas/{name}"
    )
    components["Error"] = _ERROR_SCHEMA
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    paths: dict[str, Any] = {}
    out_refs = iter(refs[len(types) :])
    for h, in_ref in zip(handlers, refs):
        kind = h.codec.output.kind
        media = h.codec.output.content_type.decode().split(";")[0]
        if kind == "json":
            out_schema: dict[str, Any] = next(out_refs)
        elif kind == "text":
            out_schema = {"type": "string"}
        elif kind in ("bytes", "file"):
            out_schema = {"type": "string", "format": "binary"}
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


def docs_page(name: str, schema: dict[str, Any]) -> bytes:
    """A small self-contained HTML page listing the apis with a form to try each (no CDN needed)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>",
        html.escape(name),
        "</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "textarea{width:100%;height:6em}pre{background:#f4f4f4;padding:.5em;white-space:pre-wrap}</style>"
        "</head><body><h1>",
        html.escape(name),
        "</h1><p><a href='docs.json'>OpenAPI</a> &middot; <a href='schema.json'>schema</a>"
        " &middot; <a href='metrics'>metrics</a></p>",
    ]
    for route in schema["routes"]:
        example = {k: v.get("default", "") for k, v in route["input"].get("properties", {}).items()}
        rid = html.escape(route["name"])
        parts += [
            f"<h2>POST {html.escape(route['route'])}</h2>",
            f"<pre>{html.escape(msgspec.json.format(msgspec.json.encode(route['input'])).decode())}</pre>",
            f"<textarea id='in-{rid}'>{html.escape(msgspec.json.encode(example).decode())}</textarea>",
            f"<button onclick=\"go('{rid}','{html.escape(route['route'][1:])}')\">Send</button>",
            f"<pre id='out-{rid}'></pre>",
        ]
    parts.append(
        "<script>async function go(n,r){const o=document.getElementById('out-'+n);"
        "const res=await fetch(r,{method:'POST',headers:{'content-type':'application/json'},"
        "body:document.getElementById('in-'+n).value});o.textContent=res.status+'\\n'+await res.text();}"
        "</script></body></html>"
    )
    return "".join(parts).encode()
