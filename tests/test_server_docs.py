"""Documentation a new user meets: ``/docs`` works offline, the OpenAPI document says how to send images and
keys, ``upscaler serve --help`` explains every flag, and the start-up log says what is served."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from server.app import create_app
from server.settings import Settings, help_of
from tests.server_helpers import serve

KEY = "docs-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("docs"), "--models", "x4-fast,x2-fast", "--api-keys", KEY) as running:
        yield running


def test_docs_are_one_self_contained_page(keyed):
    with keyed.client() as c:
        r = c.get("/docs")  # open, even with keys
        assert c.get("/redoc").status_code in (401, 404)  # FastAPI's CDN page is gone
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    external = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.I)
    assert not external and "cdn" not in page.lower() and "@import" not in page
    for path in ("/v1/upscale", "/v1/frames", "/v1/stream", "/v1/models", "/openapi.json"):
        assert path in page
    assert "<form" in page and "Bearer" in page


def test_openapi_declares_the_bearer_scheme_and_the_open_endpoints(keyed):
    with keyed.client() as c:
        spec = c.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <key>, one of the service's --api-keys",
    }
    assert spec["security"] == [{"bearer": []}]
    assert spec["paths"]["/healthz"]["get"]["security"] == [] and spec["paths"]["/metrics"]["get"]["security"] == []
    assert "security" not in spec["paths"]["/v1/upscale"]["post"]  # the global requirement applies


def test_without_keys_openapi_declares_no_scheme():
    spec = create_app(Settings()).openapi()
    assert "securitySchemes" not in spec.get("components", {}) and "security" not in spec


def test_openapi_says_how_to_send_an_image_and_a_frame():
    spec = create_app(Settings()).openapi()
    upscale = spec["paths"]["/v1/upscale"]["post"]["requestBody"]
    assert upscale["required"] and upscale["content"]["image/png"]["schema"] == {"type": "string", "format": "binary"}
    form = upscale["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["format"] == "binary" and form["required"] == ["file"]
    frames = spec["paths"]["/v1/frames"]["post"]
    assert frames["requestBody"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    headers = {p["name"].lower() for p in frames["parameters"] if p["in"] == "header"}
    assert {"x-width", "x-height", "x-format"} <= headers


def test_openapi_and_docs_list_every_error_a_route_answers_with_its_body(keyed):
    spec = create_app(Settings()).openapi()
    upscale = spec["paths"]["/v1/upscale"]["post"]["responses"]
    assert {"200", "400", "401", "404", "408", "413", "415", "422", "503", "504"} <= set(upscale)
    frames = spec["paths"]["/v1/frames"]["post"]["responses"]
    assert {"400", "413", "422", "503", "504"} <= set(frames) and "415" not in frames
    for code, response in upscale.items():
        if code == "200":
            continue
        body = response["content"]["application/json"]
        assert body["example"]["error"]["status"] == int(code) and body["schema"]["required"] == ["error"]
        assert "HTTPValidationError" not in json.dumps(body)  # FastAPI's own 422 shape, never sent here
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
    with keyed.client() as c:
        page = c.get("/docs").text
    assert "415 an image format that is not taken" in page and "504 not answered within" in page


def _serve_parser() -> argparse.ArgumentParser:
    from upscaler.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["serve"]


def test_every_serve_flag_is_explained():
    parser = _serve_parser()
    every = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    flags = [a for a in every if a.dest in Settings.__dataclass_fields__]
    assert len(flags) == len(Settings.__dataclass_fields__)
    scale_out = {a.dest for a in every} - set(Settings.__dataclass_fields__)  # not settings: how to deploy
    assert scale_out == {"ray", "replicas", "min_replicas", "max_replicas", "replica_cpus", "replica_gpus",
                         "proxy_location"}  # fmt: skip
    assert all(a.help and len(a.help) > 15 for a in every if a.dest in scale_out)
    for action in flags:
        text = action.help or ""
        assert help_of(action.dest) in text and "(default: )" not in text, action.option_strings
    helps = {a.dest: a.help for a in flags}
    from upscaler.runtime import BACKENDS, PRECISIONS

    assert all(name in helps["backend"] for name in BACKENDS)
    assert all(name in helps["precision"] for name in PRECISIONS)


def test_the_start_up_log_names_models_engines_and_precisions(keyed):
    log = keyed.log.read_text()
    assert "serving model x4-fast (x4, default) on onnxruntime-cpu, fp32 precision" in log
    assert "serving model x2-fast (x2) on onnxruntime-cpu, fp32 precision" in log
