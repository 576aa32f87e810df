"""The API's documentation: OpenAPI additions and ``/docs``, a self-contained page (nothing from a CDN).

FastAPI's own ``/docs`` and ``/redoc`` load their scripts from a CDN, so they
are blank on a machine without internet access. ``/docs`` here is one HTML
page rendered from the OpenAPI document, with a small form that sends an
image to ``/v1/upscale``; it needs nothing but the service.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from server.errors import error_body

__all__ = ["FRAME_BODY", "IMAGE_BODY", "ROUTE_ERRORS", "docs_page", "document_errors", "secure_openapi"]

_BINARY = {"schema": {"type": "string", "format": "binary"}}

#: ``/v1/upscale``'s request body: an encoded image, raw or as a multipart ``file`` part.
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An encoded image (PNG, JPEG, WebP, BMP or TIFF): the body itself, or a multipart 'file' part.",
        "content": {
            **{kind: _BINARY for kind in ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff")},
            "application/octet-stream": _BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary", "description": "the image"}},
                    "required": ["file"],
                }
            },
        },
    }
}

#: ``/v1/frames``'s request body: raw pixels, described by the X-Width, X-Height and X-Format headers.
FRAME_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Raw pixels, row by row, no padding: X-Width x X-Height x 3 bytes (rgb24, bgr24) or x 4 "
        "(rgba32).",
        "content": {"application/octet-stream": _BINARY},
    }
}

_OPEN_PATHS_HEALTH = ("/healthz", "/readyz")

#: What each error status means, as the docs say it (the body is always ``error_body``'s shape).
_ERROR_MEANING = {
    400: "the body is not a decodable image or frame (empty, truncated, corrupt, wrong length)",
    401: "missing or wrong Authorization: Bearer key",
    404: "the model named is not served here",
    408: "the request's headers or body arrived too slowly (--header-timeout-s, --body-timeout-s)",
    413: "too many bytes (--max-body-bytes) or output pixels (--max-pixels), checked before decoding",
    415: "an image format that is not taken (GIF, SVG, PDF, ...) or an unknown content type",
    422: "bad parameters: a value out of range, a temporal model on a single-image route, an impossible size",
    503: "overloaded (the queue is full) or shutting down or still loading; Retry-After says when to try again",
    504: "not answered within --request-timeout-s",
}

#: The error statuses each route can answer.
ROUTE_ERRORS = {
    ("post", "/v1/upscale"): (400, 401, 404, 408, 413, 415, 422, 503, 504),
    ("post", "/v1/frames"): (400, 401, 404, 408, 413, 422, 503, 504),
    ("get", "/v1/models"): (401, 503),
    ("get", "/readyz"): (503,),
    ("get", "/metrics"): (401,),
}

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "status", "message"],
            "properties": {
                "code": {"type": "string", "description": "a stable name: bad_request, too_large, overloaded, ..."},
                "status": {"type": "integer", "description": "the HTTP status"},
                "message": {"type": "string", "description": "what was wrong, for people"},
            },
        }
    },
}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every error a route answers listed, each with the one JSON error body (FastAPI lists only
    its own 422, in a shape this service never sends)."""
    for (method, path), statuses in ROUTE_ERRORS.items():
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        responses = operation.setdefault("responses", {})
        for status in statuses:
            example = error_body(status, _ERROR_MEANING[status])
            responses[str(status)] = {
                "description": _ERROR_MEANING[status],
                "content": {"application/json": {"schema": _ERROR_SCHEMA, "example": example}},
            }
    return schema


def secure_openapi(schema: dict[str, Any], *, keys: bool, open_health: bool, open_metrics: bool) -> dict[str, Any]:
    """``schema`` with the bearer scheme declared (when keys are set) and the open endpoints marked open."""
    if not keys:
        return schema
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <key>, one of the service's --api-keys",
    }
    schema["security"] = [{"bearer": []}]
    open_paths = [*(_OPEN_PATHS_HEALTH if open_health else ()), *(["/metrics"] if open_metrics else [])]
    for path in open_paths:
        for operation in schema.get("paths", {}).get(path, {}).values():
            operation["security"] = []  # overrides the global requirement
    return schema


_STREAM = """<p><code>WS /v1/stream?width=W&amp;height=H&amp;format=rgb24|bgr24|rgba32&amp;model=NAME</code>:
send raw frames of that size as binary messages; each is answered, in order, by the upscaled frame (binary)
or, in its place, by a JSON error message. At most <code>--max-in-flight</code> frames are processed at once;
the service stops reading while they are. The key (if any) is checked first: 401 in the handshake. Bad
parameters, an unknown model or too many pixels: one JSON error message, then a close frame (1008) whose
reason repeats it.</p>
<p>With a temporal model (<code>model=x4-temporal</code>) the connection owns one history and each binary
message is one frame: a 24-byte little-endian header (magic <code>UPTF</code>, version 1, flags: 1 reset,
2 motion follows; reserved; width, height as uint32; jitter x, y as float32), the RGB pixels, then, with the
motion flag, H x W x 2 float32 motion vectors (previous = current + motion, low-resolution pixels). Frames run
in order, each continuing the history; a size change starts a new one. A bad frame gets a JSON error in its
place and leaves the history as it was. At most <code>--max-streams</code> temporal streams are open at once:
more get 503 in the handshake. Python: <code>upscaler.client.StreamClient</code>.</p>"""

_FORM = """<form id="try"><label>image <input type="file" name="file" accept="image/*" required></label>
<label>model <input name="model" placeholder="default"></label>
<label>format <select name="format"><option>png</option><option>jpeg</option><option>webp</option></select></label>
<label>key <input name="key" type="password" placeholder="if the service has API keys"></label>
<button>upscale</button></form><p id="out"></p>
<script>
document.getElementById("try").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target), out = document.getElementById("out");
  const query = new URLSearchParams({format: form.get("format")});
  if (form.get("model")) query.set("model", form.get("model"));
  const body = new FormData(); body.append("file", form.get("file"));
  const headers = form.get("key") ? {Authorization: "Bearer " + form.get("key")} : {};
  out.textContent = "working...";
  const reply = await fetch("/v1/upscale?" + query, {method: "POST", body, headers});
  if (!reply.ok) { out.textContent = reply.status + " " + await reply.text(); return; }
  const url = URL.createObjectURL(await reply.blob());
  out.innerHTML = "";
  const link = document.createElement("a"); link.href = url; link.download = "upscaled." + form.get("format");
  link.textContent = "download (" + reply.headers.get("x-model") + ", " + reply.headers.get("x-compute-ms")
    + " ms engine)";
  const img = document.createElement("img"); img.src = url; img.style.maxWidth = "100%";
  out.append(link, document.createElement("br"), img);
});
</script>"""

_STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
code,pre{background:#f3f3f3;padding:0 .2em}pre{padding:.5em;overflow:auto}h2{border-top:1px solid #ddd;
padding-top:.6em}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;
vertical-align:top}.m{font-weight:bold;color:#06c}label{margin-right:1em}"""


def _schema_text(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_schema_text(s) for s in schema["anyOf"] if s.get("type") != "null")
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "maxLength") if k in schema]
    return " ".join([schema.get("type", ""), *(f"({b})" for b in bounds)]).strip()


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    e = html.escape
    opened = " <em>(open: no key needed)</em>" if op.get("security") == [] else ""
    parts = [
        f'<h3><span class="m">{method.upper()}</span> <code>{e(path)}</code>{opened}</h3>'
        f"<p>{e(op.get('summary', ''))}</p>"
    ]
    if op.get("description"):
        parts.append(f"<p>{e(op['description'])}</p>")
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td><td>{'yes' if p.get('required') else ''}"
            f"</td><td>{e(_schema_text(p.get('schema', {})))}</td><td>{e(p.get('description', ''))}</td></tr>"
            for p in params
        )
        parts.append(
            f"<table><tr><th>parameter</th><th>in</th><th>required</th><th>values</th><th></th></tr>{rows}</table>"
        )
    body = op.get("requestBody")
    if body:
        kinds = ", ".join(f"<code>{e(k)}</code>" for k in body.get("content", {}))
        parts.append(f"<p>Body: {e(body.get('description', ''))} ({kinds})</p>")
    responses = ", ".join(f"{e(code)} {e(r.get('description', ''))}" for code, r in op.get("responses", {}).items())
    parts.append(f"<p>Answers: {responses}</p>")
    return "".join(parts)


def docs_page(openapi: Callable[[], dict[str, Any]]) -> str:
    """The ``/docs`` page for the OpenAPI document ``openapi()``."""
    spec = openapi()
    info = spec.get("info", {})
    e = html.escape
    operations = "".join(
        _operation(method, path, op)
        for path, methods in spec.get("paths", {}).items()
        for method, op in methods.items()
    )
    keys = "bearer" in spec.get("components", {}).get("securitySchemes", {})
    auth = (
        "<p>This service needs <code>Authorization: Bearer &lt;key&gt;</code> on every endpoint but those marked "
        "open.</p>"
        if keys
        else "<p>This service needs no key.</p>"
    )
    example = html.escape(json.dumps(error_body(413, "1024x1024 at x4 makes ... output pixels; the limit is ...")))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(info.get("title", ""))} API</title>
<style>{_STYLE}</style></head><body><h1>{e(info.get("title", ""))} {e(info.get("version", ""))}</h1>
<p>{e(info.get("description", ""))}</p>{auth}
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI {e(spec.get("openapi", ""))}).</p>
<h2>Try it</h2>{_FORM}
<h2>Endpoints</h2>{operations}
<h3><span class="m">WS</span> <code>/v1/stream</code></h3>{_STREAM}
<h2>Errors</h2><p>Every error, on HTTP and on the stream, is one JSON shape: <code>{example}</code>. <code>code</code>
is a stable name, <code>status</code> the HTTP status.</p></body></html>"""
