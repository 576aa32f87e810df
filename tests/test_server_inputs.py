"""What the service accepts, against a real ``upscaler serve``: TIFFs of any size, unsupported formats (415),
malformed multipart (400), and only the models it serves (never a path on its disk)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.server_helpers import serve
from upscaler import Upscaler
from upscaler.io import decode_image
from upscaler.models import WEIGHTS_DIR

X2_WEIGHTS = WEIGHTS_DIR / "x2-fast.safetensors"
X4_WEIGHTS = WEIGHTS_DIR / "x4-fast.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # x2-fast is loaded from its weights file: clients name it by its name, never by the path.
    with serve(tmp_path_factory.mktemp("inputs"), "--models", f"x4-fast,{X2_WEIGHTS}") as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def close_to(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def test_a_tiff_larger_than_64_kb_is_upscaled(client):
    image = np.random.default_rng(3).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".tiff", image)  # libtiff writes the image directory after the pixels
    data = buf.tobytes()
    assert ok and len(data) > 65536 and int.from_bytes(data[4:8], "little") > 65536
    r = client.post("/v1/upscale", content=data, headers={"Content-Type": "image/tiff"})
    assert r.status_code == 200, r.text
    sent = decode_image(data)
    assert close_to(decode_image(r.content), Upscaler("x4-fast", "onnxruntime").upscale(sent))


GIF = (  # a 2x2 GIF
    b"GIF89a\x02\x00\x02\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x00\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x02\x00\x02\x00\x00\x02\x02D\x01\x00;"
)
SVG = b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>'
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.mark.parametrize(("name", "body"), [("gif", GIF), ("svg", SVG), ("pdf", PDF)])
@pytest.mark.parametrize("content_type", ["application/octet-stream", None])
def test_unsupported_formats_get_415(client, name, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/v1/upscale", content=body, headers=headers)
    assert r.status_code == 415, r.text
    error = r.json()["error"]
    assert error["code"] == "unsupported_media_type" and error["message"].startswith(f"{name} images")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"--abc--\r\n",
        b"\r\n\r\n\r\n",
        b'--abc\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nx',
    ],
    ids=["empty", "closing-boundary-only", "blank-lines", "unterminated-part"],
)
def test_garbage_multipart_is_a_400(client, body):
    r = client.post("/v1/upscale", content=body, headers={"Content-Type": "multipart/form-data; boundary=abc"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", r.text


def test_only_served_models_can_be_named(client, photo):
    frame = np.ascontiguousarray(photo[:8, :8])
    headers = {"X-Width": "8", "X-Height": "8"}

    def ask(model: str):
        return client.post("/v1/frames", params={"model": model}, content=frame.tobytes(), headers=headers)

    for name, size in (("x4-fast", 32), ("x4", 32), ("x2-fast", 16), ("x2", 16), ("default", 32)):
        r = ask(name)
        assert r.status_code == 200 and r.headers["x-width"] == str(size), (name, r.text)
    # Paths on the server's disk, served ones included, never resolve: 404, saying nothing about the file.
    for path in (str(X4_WEIGHTS), str(X2_WEIGHTS), "/etc/passwd.safetensors", "../../x4-fast.safetensors"):
        r = ask(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["message"] == f"model {path!r} is not served here; served: x4-fast, x2-fast"
    models = client.get("/v1/models").json()["models"]
    assert all(str(WEIGHTS_DIR) not in alias for m in models for alias in m["aliases"])
