"""Compressed or clean sources: the JPEG grid in pixels, what a file's format and a video's codec say, and
the clean partner x4-video hands a clean source to (``upscaler.sources``), through upscale, eval and video."""

import io
import json

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.video_helpers import make_clip
from upscaler.degradations import bicubic, compress
from upscaler.io import read_image, read_image_bytes, write_image
from upscaler.models import get_model, load_partners
from upscaler.sources import (
    JPEG_GRID_THRESHOLD,
    LIGHT_JPEG_QUALITY,
    PerSource,
    choose_model,
    clean_partner,
    image_evidence,
    jpeg_grid,
    jpeg_quality,
    jpeg_spec_quality,
    lossy_image_bytes,
    lossy_video_codec,
)

PINNED = {"UPSCALER_CPU_PRECISION": "fp32"}  # both models in one precision: outputs compared byte for byte


def _encoded(image: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **options)
    return buffer.getvalue()


def test_partners_in_the_manifest_name_models_of_the_same_scale():
    partners = load_partners()
    assert partners == {"x4-video": "x4-fast", "x2-video": "x2-fast", "x4-video-quality": "x4-quality"}
    for model, partner in partners.items():
        assert get_model(model).scale == get_model(partner).scale
    assert clean_partner("x4-fast") is None


@pytest.mark.parametrize("scale", [2, 4])
def test_jpeg_grid_separates_clean_from_jpeg_pixels(set5, scale):
    for name, hr in set5.items():
        lr = bicubic(hr, scale)
        assert jpeg_grid(lr) < JPEG_GRID_THRESHOLD, name
        for quality in (40, 90):
            assert jpeg_grid(compress(lr, f"jpeg:{quality}")) > JPEG_GRID_THRESHOLD, (name, quality)


def test_jpeg_grid_is_zero_where_there_is_too_little_to_tell(photo):
    assert jpeg_grid(compress(photo[:30, :30], "jpeg:20")) == 0.0
    assert jpeg_grid(np.zeros((64, 64), np.uint8)) == 0.0  # flat: every coefficient is zero, aligned or not


def test_jpeg_grid_reads_sixteen_bit_and_grey(photo):
    jpeg = compress(photo, "jpeg:40")
    deep = jpeg.astype(np.uint16) * 257
    assert jpeg_grid(deep) == pytest.approx(jpeg_grid(jpeg), abs=0.02)
    grey = cv2.cvtColor(jpeg, cv2.COLOR_RGB2GRAY)
    assert jpeg_grid(grey) > JPEG_GRID_THRESHOLD


def test_the_format_says_lossy_or_lossless(photo):
    assert lossy_image_bytes(_encoded(photo, "JPEG", quality=90)) is True
    assert lossy_image_bytes(_encoded(photo, "WEBP", quality=90)) is True
    assert lossy_image_bytes(_encoded(photo, "WEBP", lossless=True)) is False
    assert lossy_image_bytes(_encoded(np.dstack([photo, photo[..., :1]]), "WEBP", quality=80)) is True  # VP8X
    for fmt in ("PNG", "BMP", "TIFF", "GIF"):
        assert lossy_image_bytes(_encoded(photo, fmt)) is False, fmt
    assert lossy_image_bytes(b"not an image at all") is None


def test_a_jpeg_says_its_quality_in_its_tables(tmp_path, photo):
    """libjpeg's tables, written by Pillow and by OpenCV: the quality comes back; anything else says None."""
    for q in (25, 40, 75, 89, 90, 95):
        assert jpeg_quality(_encoded(photo, "JPEG", quality=q)) == q
        data = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, q])[1]
        assert jpeg_quality(data.tobytes()) == q
    jpeg = _encoded(photo, "JPEG", quality=95)
    assert jpeg_quality(_encoded(photo, "PNG")) is None and jpeg_quality(jpeg[:20]) is None  # no table yet
    assert jpeg_quality(_encoded(photo, "WEBP", quality=95)) is None
    (tmp_path / "photo.jpg").write_bytes(jpeg)
    image, data = read_image_bytes(tmp_path / "photo.jpg")  # one read serves the pixels and the evidence
    assert data == jpeg and image.shape == photo.shape and image_evidence(data) == (True, 95)
    assert (jpeg_spec_quality("jpeg:95"), jpeg_spec_quality("h264:28"), jpeg_spec_quality(None)) == (95, None, None)


def test_video_codecs():
    assert lossy_video_codec("h264") and lossy_video_codec("hevc") and lossy_video_codec("vp9")
    assert not lossy_video_codec("ffv1") and not lossy_video_codec("rawvideo") and not lossy_video_codec("prores")


def test_choose_model(photo):
    lr = bicubic(photo, 4)
    jpeg = compress(lr, "jpeg:40")
    assert choose_model("x4-fast", "clean") == "x4-fast"  # no partner: the model always runs
    assert choose_model("x4-video", "compressed", image=lr) == "x4-video"
    assert choose_model("x4-video", "clean", lossy=True) == "x4-fast"
    assert choose_model("x4-video", image=lr) == "x4-fast"
    assert choose_model("x4-video", image=jpeg) == "x4-video"
    assert choose_model("x4-video", lossy=True, image=lr) == "x4-video"  # an H.264 frame: the codec says so
    assert choose_model("x4-video", lossy=False, image=jpeg) == "x4-video"  # a PNG that once was a JPEG
    assert choose_model("x2-video", image=bicubic(photo, 2)) == "x2-fast"
    assert choose_model("x4-video-quality", image=lr) == "x4-quality"  # the quality pair, as the fast one
    assert choose_model("x4-video-quality", image=jpeg) == "x4-video-quality"
    light, heavy = LIGHT_JPEG_QUALITY, LIGHT_JPEG_QUALITY - 5  # a JPEG file's own quality, from its tables
    assert choose_model("x4-video", lossy=True, quality=light, image=jpeg) == "x4-fast"
    assert choose_model("x4-video", lossy=True, quality=heavy, image=lr) == "x4-video"
    assert choose_model("x4-video", "compressed", lossy=True, quality=light) == "x4-video"
    with pytest.raises(ValueError, match="source must be one of"):
        choose_model("x4-video", "maybe")


def test_per_source_loads_each_model_once_and_counts(photo):
    loads = []

    class Scaled:
        def __init__(self, name):
            loads.append(name)
            self.name = name

        def upscale(self, image):
            return self.name

    per = PerSource("x4-video", "auto", Scaled)
    lr = bicubic(photo, 4)
    outputs = [per.upscale(x) for x in (lr, compress(lr, "jpeg:40"), lr, lr)]
    assert outputs == ["x4-fast", "x4-video", "x4-fast", "x4-fast"]
    assert loads == ["x4-fast", "x4-video"] and per.used == {"x4-fast": 3, "x4-video": 1}


def test_upscale_cli_runs_the_clean_partner_on_a_clean_png(tmp_path, photo):
    lr = bicubic(photo, 4)
    write_image(tmp_path / "clean.png", lr)
    (tmp_path / "photo.jpg").write_bytes(_encoded(lr, "JPEG", quality=60))
    write_image(tmp_path / "was-jpeg.png", read_image(tmp_path / "photo.jpg"))
    (tmp_path / "camera.jpg").write_bytes(_encoded(lr, "JPEG", quality=95))  # a light JPEG: clean
    result = run_cli("upscale", str(tmp_path / "*.*"), "-o", str(tmp_path / "video"), "-m", "video", env=PINNED)
    assert result.returncode == 0, result.stderr
    assert "x4-fast on onnxruntime-cpu (2)" in result.stderr  # clean.png, and camera.jpg by its quality
    assert "x4-video on onnxruntime-cpu (2)" in result.stderr  # photo.jpg by its format, was-jpeg.png by its grid
    for model, folder in (("x4-fast", "fast"), ("x4-video", "forced")):
        extra = ["--source", "compressed"] if model == "x4-video" else []
        assert run_cli("upscale", str(tmp_path / "clean.png"), "-o", str(tmp_path / folder), "-m", model, *extra,
                       env=PINNED).returncode == 0  # fmt: skip
    made = read_image(tmp_path / "video" / "clean.png")
    assert np.array_equal(made, read_image(tmp_path / "fast" / "clean.png"))
    assert not np.array_equal(made, read_image(tmp_path / "forced" / "clean.png"))


def test_eval_reports_the_models_that_ran(tmp_path, set5_dir):
    report = tmp_path / "r.json"
    base = ["eval", "-m", "video", "--data", str(set5_dir), "--limit", "2", "--backend", "onnxruntime"]
    assert run_cli(*base, "--json", str(report), env=PINNED).returncode == 0
    clean = json.loads(report.read_text())
    assert clean["source"] == "auto" and clean["models_run"] == {"x4-fast": 2}
    assert run_cli(*base, "--degrade", "h264:28", "--json", str(report), env=PINNED).returncode == 0
    assert json.loads(report.read_text())["models_run"] == {"x4-video": 2}
    assert run_cli(*base, "--degrade", "jpeg:95", "--json", str(report), env=PINNED).returncode == 0
    assert json.loads(report.read_text())["models_run"] == {"x4-fast": 2}  # a light JPEG: as its file would say
    assert run_cli(*base, "--source", "compressed", "--json", str(report), env=PINNED).returncode == 0
    forced = json.loads(report.read_text())
    assert forced["models_run"] == {"x4-video": 2}
    assert forced["datasets"][0]["psnr"] < clean["datasets"][0]["psnr"]


def test_video_cli_picks_the_model_by_codec(tmp_path):
    lossless = make_clip(tmp_path / "lossless.mkv", codec="ffv1", frames=6, audio=False)
    lossy = make_clip(tmp_path / "lossy.mkv", frames=6, audio=False)
    summary = tmp_path / "s.json"
    result = run_cli("video", str(lossless), str(lossy), "-o", str(tmp_path / "out"), "--json", str(summary),
                     "--threads", "1", env=PINNED)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "lossless.mkv: its codec (ffv1) is lossless: x4-fast runs" in result.stderr
    files = {f["input"].rsplit("/", 1)[-1]: f for f in json.loads(summary.read_text())["files"]}
    assert files["lossless.mkv"]["model"] == "x4-fast" and files["lossy.mkv"]["model"] == "x4-video"
    forced = tmp_path / "forced.mkv"
    assert run_cli("video", str(lossless), "-o", str(forced), "--source", "compressed", "--json", str(summary),
                   "--threads", "1", "-q", env=PINNED).returncode == 0  # fmt: skip
    assert json.loads(summary.read_text())["files"][0]["model"] == "x4-video"
    with av.open(str(forced)) as a, av.open(str(tmp_path / "out" / "lossless.mkv")) as b:
        assert a.streams.video[0].width == b.streams.video[0].width == 4 * 48


def test_service_hands_a_clean_image_to_the_served_partner(tmp_path, photo):
    from tests.server_helpers import serve
    from upscaler.io import decode_image, encode_image

    lr = bicubic(photo, 4)
    png, jpeg = encode_image(lr, "png"), _encoded(lr, "JPEG", quality=60)
    with serve(tmp_path, "--models", "x4-video,x4-fast", env=PINNED) as running, running.client() as client:

        def model_for(body: bytes, kind: str, **params) -> str:
            r = client.post("/v1/upscale", content=body, params=params, headers={"Content-Type": kind})
            assert r.status_code == 200, r.text
            assert decode_image(r.content).shape == (4 * lr.shape[0], 4 * lr.shape[1], 3)
            return r.headers["X-Model"]

        assert model_for(png, "image/png", model="video") == "x4-fast"
        assert model_for(jpeg, "image/jpeg", model="video") == "x4-video"
        assert model_for(_encoded(lr, "JPEG", quality=95), "image/jpeg", model="video") == "x4-fast"
        assert model_for(png, "image/png", model="video", source="compressed") == "x4-video"
        assert model_for(jpeg, "image/jpeg", model="video", source="clean") == "x4-fast"
        assert model_for(png, "image/png", model="x4-fast", source="compressed") == "x4-fast"
        h, w = lr.shape[:2]
        raw = {"X-Width": str(w), "X-Height": str(h), "Content-Type": "application/octet-stream"}
        r = client.post("/v1/frames", content=lr.tobytes(), params={"model": "video"}, headers=raw)
        assert r.status_code == 200 and r.headers["X-Model"] == "x4-fast"
        r = client.post("/v1/upscale", content=png, params={"model": "video", "source": "maybe"})
        assert r.status_code == 422 and "source" in r.text
    with serve(tmp_path, "--models", "x4-video", env=PINNED) as running, running.client() as client:
        r = client.post("/v1/upscale", content=png, params={"model": "video"}, headers={"Content-Type": "image/png"})
        assert r.status_code == 200 and r.headers["X-Model"] == "x4-video"  # the partner is not served here
        r = client.post("/v1/upscale", content=png, params={"model": "video", "source": "clean"})
        assert r.status_code == 422 and "--models x4-video,x4-fast" in r.json()["error"]["message"]
