"""The HTTP service, against a real ``upscaler serve`` on loopback: endpoints, bad input, limits, auth."""

from __future__ import annotations

import json
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from server.settings import Settings
from tests.server_helpers import serve, serve_in_thread, wait_until
from upscaler import Upscaler
from upscaler.io import ImageError, decode_image, encode_image

KEY = "k" * 24


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    args = ["--models", "x4-fast,x2-fast", "--max-pixels", "400000", "--max-body-bytes", "2000000"]
    batching = ["--max-batch-size", "4", "--max-batch-delay-ms", "30"]
    with serve(tmp_path_factory.mktemp("serve"), *args, *batching) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def direct():
    return {name: Upscaler(name, "onnxruntime") for name in ("x4-fast", "x2-fast")}


def close_to(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to one grey level (batched and single engine calls may round apart)."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def assert_healthy(client, photo, direct):
    """The server still answers a good request, correctly."""
    small = photo[:24, :32]
    r = client.post("/v1/upscale", content=encode_image(small, "png"), headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    assert close_to(decode_image(r.content), direct["x4-fast"].upscale(small))


def error_of(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "status", "message"}
    assert body["error"]["status"] == status and isinstance(body["error"]["code"], str)
    return body["error"]


# -- endpoints ---------------------------------------------------------------


def test_health_ready_models_metrics_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True}
    models = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in models] == ["x4-fast", "x2-fast"] and models[0]["default"]
    assert models[0]["engine"] == "onnxruntime-cpu" and models[1]["scale"] == 2
    assert "upscaler_requests_total" in client.get("/metrics").text
    spec = client.get("/openapi.json").json()
    assert {"/v1/upscale", "/v1/frames", "/v1/models", "/healthz", "/readyz"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "bmp", "tiff"])
def test_upscale_accepts_every_input_format(client, photo, direct, fmt):
    image = photo[:40, :50]
    _ok, buf = cv2.imencode("." + fmt, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    sent = decode_image(buf.tobytes())
    r = client.post("/v1/upscale", content=buf.tobytes(), headers={"Content-Type": f"image/{fmt}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-model"] == "x4-fast"
    assert float(r.headers["x-compute-ms"]) > 0 and int(r.headers["x-batch-size"]) >= 1
    assert close_to(decode_image(r.content), direct["x4-fast"].upscale(sent))


def test_upscale_multipart_output_formats_and_models(client, photo, direct):
    image = photo[:30, :36]
    png = encode_image(image, "png")
    r = client.post("/v1/upscale?format=jpeg&quality=90", files={"file": ("a.png", png, "image/png")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert decode_image(r.content).shape == (120, 144, 3)
    r = client.post("/v1/upscale?model=x2&format=webp", content=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.headers["x-model"] == "x2-fast"
    assert decode_image(r.content).shape == (60, 72, 3)
    r = client.post("/v1/upscale?model=x2-fast", content=png, headers={"Content-Type": "application/octet-stream"})
    assert close_to(decode_image(r.content), direct["x2-fast"].upscale(image))


def test_upscale_keeps_alpha_and_grey(client, photo, direct):
    rgba = np.dstack([photo[:20, :20], np.linspace(0, 255, 400).reshape(20, 20).astype(np.uint8)])
    r = client.post("/v1/upscale", content=encode_image(rgba, "png"), headers={"Content-Type": "image/png"})
    out = decode_image(r.content)
    assert out.shape == (80, 80, 4) and close_to(out, direct["x4-fast"].upscale(rgba))
    grey = photo[:16, :16, 1]
    r = client.post("/v1/upscale", content=encode_image(grey, "png"), headers={"Content-Type": "image/png"})
    assert decode_image(r.content).shape == (64, 64)


@pytest.mark.parametrize("fmt", ["rgb24", "bgr24", "rgba32"])
def test_raw_frames_round_trip(client, photo, direct, fmt):
    h, w = 18, 26
    rgb = photo[:h, :w]
    frame = {"rgb24": rgb, "bgr24": rgb[:, :, ::-1], "rgba32": np.dstack([rgb, np.full((h, w), 255, np.uint8)])}[fmt]
    headers = {"X-Width": str(w), "X-Height": str(h), "X-Format": fmt}
    r = client.post("/v1/frames", content=np.ascontiguousarray(frame).tobytes(), headers=headers)
    assert r.status_code == 200, r.text
    assert (r.headers["x-width"], r.headers["x-height"], r.headers["x-format"]) == (str(4 * w), str(4 * h), fmt)
    out = np.frombuffer(r.content, np.uint8).reshape(4 * h, 4 * w, frame.shape[2])
    expected = direct["x4-fast"].upscale(rgb)
    got = out[:, :, ::-1] if fmt == "bgr24" else out[:, :, :3]
    assert close_to(np.ascontiguousarray(got), expected)


def test_websocket_stream_answers_in_order_and_reports_bad_frames(server, photo, direct):
    h, w = 12, 16
    frames = [np.ascontiguousarray(photo[i : i + h, i : i + w]) for i in range(6)]
    url = f"{server.ws_url}/v1/stream?width={w}&height={h}&format=rgb24"
    with connect(url) as ws:
        for i, f in enumerate(frames):
            ws.send(f.tobytes())
            if i == 2:
                ws.send(b"short")  # answered in its place, the stream goes on
        replies = [ws.recv(timeout=60) for _ in range(len(frames) + 1)]
    assert json.loads(replies[3])["error"] | {"message": ""} == {"code": "bad_request", "status": 400, "message": ""}
    images = [r for i, r in enumerate(replies) if i != 3]
    for f, r in zip(frames, images):
        out = np.frombuffer(r, np.uint8).reshape(4 * h, 4 * w, 3)
        assert close_to(out, direct["x4-fast"].upscale(f))


def test_websocket_rejects_unknown_model_and_huge_frames(server):
    with connect(f"{server.ws_url}/v1/stream?width=8&height=8&model=nope") as ws:
        assert json.loads(ws.recv(timeout=10))["error"]["status"] == 404
    with connect(f"{server.ws_url}/v1/stream?width=4000&height=4000") as ws:
        error = json.loads(ws.recv(timeout=10))["error"]
        assert (error["code"], error["status"]) == ("too_large", 413)


def test_request_ids_are_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"}).headers["x-request-id"]
    assert len(made) == 32 and made != "bad id\twith junk"


# -- bad input ---------------------------------------------------------------


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb() -> bytes:
    """A valid 3000x3000 PNG of zeros: a few KB that decode to 27 MB."""
    return encode_image(np.zeros((3000, 3000, 3), np.uint8), "png")


def _undecodable_bomb() -> bytes:
    """A PNG whose header declares 3000x3000 but whose pixel data is not even a zlib stream."""
    return _png_header(3000, 3000) + _chunk(b"IDAT", bytes(range(256)) * 32) + _chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"", {"Content-Type": "image/png"}, 400),
        (b"not an image at all", {"Content-Type": "image/png"}, 400),
        ("truncated", {"Content-Type": "image/png"}, 400),
        ("corrupt", {"Content-Type": "image/jpeg"}, 400),
        ("png", {"Content-Type": "text/plain"}, 415),
        ("pnm", {"Content-Type": "application/octet-stream"}, 415),
        (_png_header(100_000, 100_000), {"Content-Type": "image/png"}, 413),
        ("bomb", {"Content-Type": "image/png"}, 413),
        (b"\0" * 2_100_000, {"Content-Type": "image/png"}, 413),
    ],
    ids=["empty", "garbage", "truncated", "corrupt", "content-type", "pnm", "declared-huge", "bomb", "too-many-bytes"],
)
def test_bad_images_get_json_errors_and_the_server_carries_on(client, photo, direct, body, headers, status):
    png = encode_image(photo[:40, :40], "png")
    jpeg = encode_image(photo[:40, :40], "jpeg")
    body = {
        "truncated": png[: len(png) // 2],
        "corrupt": jpeg[:200] + bytes(range(256)) * 4 + jpeg[1200:],
        "png": png,
        "pnm": b"P6\n4 4\n255\n" + bytes(48),
        "bomb": _bomb(),
    }.get(body, body)
    error_of(client.post("/v1/upscale", content=body, headers=headers), status)
    assert_healthy(client, photo, direct)


def test_a_bomb_is_refused_from_its_header_without_decoding(client, photo, direct):
    body = _undecodable_bomb()
    with pytest.raises(ImageError):  # decoding it fails: had the service decoded it, the answer would be a 400
        decode_image(body)
    error = error_of(client.post("/v1/upscale", content=body, headers={"Content-Type": "image/png"}), 413)
    message = "3000x3000 at x4 makes 12000x12000 = 144000000 output pixels; the limit is 400000"
    assert error == {"code": "too_large", "status": 413, "message": message}
    assert_healthy(client, photo, direct)


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/v1/frames", {"X-Width": "4", "X-Height": "4"}, bytes(47), 400),
        ("/v1/frames", {"X-Width": "4", "X-Height": "4", "X-Format": "rgba32"}, bytes(48), 400),
        ("/v1/frames", {"X-Width": "4"}, bytes(48), 422),
        ("/v1/frames", {"X-Width": "-4", "X-Height": "4"}, bytes(48), 422),
        ("/v1/frames", {"X-Width": "4", "X-Height": "4", "X-Format": "yuv420"}, bytes(48), 422),
        ("/v1/frames", {"X-Width": "5000", "X-Height": "5000"}, bytes(10), 413),
        ("/v1/frames?model=nope", {"X-Width": "4", "X-Height": "4"}, bytes(48), 404),
        ("/v1/upscale?format=gif", {"Content-Type": "image/png"}, b"x", 422),
        ("/v1/upscale?quality=0", {"Content-Type": "image/png"}, b"x", 422),
    ],
)
def test_bad_parameters_and_frames(client, photo, direct, path, headers, body, status):
    error_of(client.post(path, content=body, headers=headers), status)
    assert_healthy(client, photo, direct)


def test_unknown_model_and_multipart_without_file(client, photo, direct):
    png = encode_image(photo[:8, :8], "png")
    assert "x4-fast" in error_of(client.post("/v1/upscale?model=x8", content=png), 404)["message"]
    error_of(client.post("/v1/upscale", files={"image": ("a.png", png, "image/png")}), 422)
    error_of(client.get("/v1/upscale"), 405)
    assert_healthy(client, photo, direct)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/v1/upscale", "/v1/frames"]),
    query=st.dictionaries(st.sampled_from(["model", "format", "quality"]), st.text(max_size=8), max_size=3),
    headers=st.dictionaries(
        st.sampled_from(["X-Width", "X-Height", "X-Format", "Content-Type"]),
        # Header values as a client can send them: printable ASCII without surrounding blanks.
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=10).map(str.strip),
        max_size=4,
    ),
    body=st.binary(max_size=300),
)
def test_fuzzed_requests_never_break_the_server(client, path, query, headers, body):
    r = client.post(path, params=query, headers=headers, content=body)
    assert r.status_code in {200, 400, 404, 413, 415, 422}, (r.status_code, r.text)
    if r.status_code != 200:
        error_of(r, r.status_code)
    assert client.get("/healthz").status_code == 200


# -- batching ----------------------------------------------------------------


def _batch_counts(client) -> tuple[float, float]:
    """(engine calls, requests served through them) from the batch-size histogram."""
    text = client.get("/metrics").text
    count = next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("upscaler_batch_size_count"))
    total = next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("upscaler_batch_size_sum"))
    return count, total


def test_concurrent_same_shape_requests_run_as_batches(photo, direct):
    frame = np.ascontiguousarray(photo[:32, :48])
    headers = {"X-Width": "48", "X-Height": "32"}
    settings = Settings(models=["x4-fast"], max_batch_size=4, warmup=False)
    with serve_in_thread(settings) as server, server.client() as c, ThreadPoolExecutor(9) as pool:
        gate = server.gate()  # the engine holds its first call while the others gather

        def one(_):
            with server.client() as mine:
                return mine.post("/v1/frames", content=frame.tobytes(), headers=headers)

        first = pool.submit(one, 0)
        wait_until(gate.entered.is_set, "the first request to reach the engine")
        rest = [pool.submit(one, i) for i in range(1, 9)]
        wait_until(lambda: server.service.batcher.waiting == 8, "eight requests to queue")
        gate.open()
        replies = [first.result(), *(f.result() for f in rest)]
        calls, served = _batch_counts(c)
    assert all(r.status_code == 200 for r in replies)
    expected = direct["x4-fast"].upscale(frame)
    assert all(close_to(np.frombuffer(r.content, np.uint8).reshape(expected.shape), expected) for r in replies)
    assert gate.calls == [1, 4, 4] and (calls, served) == (3, 9)
    assert sorted(int(r.headers["x-batch-size"]) for r in replies) == [1] + [4] * 8


def test_any_output_size_as_query_parameters(client, photo, direct):
    from upscaler.outsize import fit

    small = np.ascontiguousarray(photo[:24, :32])
    png, raw = encode_image(small, "png"), small.tobytes()
    frame_headers = {"X-Width": "32", "X-Height": "24"}

    def image(**params) -> np.ndarray:
        r = client.post("/v1/upscale", params=params, content=png, headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
        return decode_image(r.content)

    assert close_to(image(outscale=3), fit(direct["x4-fast"].upscale(small), 96, 72))
    assert close_to(image(outscale=1.5), fit(direct["x2-fast"].upscale(small), 48, 36))  # the served x2 sibling
    assert image(width=100).shape == (75, 100, 3) and image(width=50, height=20).shape == (20, 50, 3)
    r = client.post("/v1/frames", params={"height": 60}, content=raw, headers=frame_headers)
    assert r.status_code == 200 and (r.headers["X-Width"], r.headers["X-Height"]) == ("80", "60")
    got = np.frombuffer(r.content, np.uint8).reshape(60, 80, 3)
    assert close_to(got, fit(direct["x4-fast"].upscale(small), 80, 60))
    assert (
        "not both"
        in error_of(client.post("/v1/upscale", params={"outscale": 2, "width": 9}, content=png), 422)["message"]
    )
    assert error_of(client.post("/v1/frames", params={"outscale": 17}, content=raw, headers=frame_headers), 422)
    assert "at most 16x" in error_of(client.post("/v1/upscale", params={"width": 2000}, content=png), 422)["message"]
    medium = encode_image(np.ascontiguousarray(photo[:75, :100]), "png")  # x4: 400x300, within --max-pixels
    big = client.post("/v1/upscale", params={"width": 1000}, content=medium)  # 1000x750 > --max-pixels 400000
    assert "1000x750" in error_of(big, 413)["message"]
