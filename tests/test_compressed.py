"""Compressed sources: the codecs the evaluation protocol and the training data apply (JPEG through OpenCV,
H.264 through PyAV), ``upscaler eval --degrade``, the training pairs, and the x4-video model on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from upscaler.degradations import bicubic, check_compression, compress, modcrop
from upscaler.io import write_image
from upscaler.metrics import psnr


@pytest.fixture(scope="module")
def lr(photo) -> np.ndarray:
    return bicubic(modcrop(np.ascontiguousarray(photo[:192, :256]), 4), 4)  # 64x48


@pytest.mark.parametrize("codec", ["jpeg", "h264"])
def test_a_codec_loses_more_at_lower_quality_and_does_the_same_every_time(lr, codec):
    low, high = ("jpeg:20", "jpeg:90") if codec == "jpeg" else ("h264:40", "h264:12")
    a, b = compress(lr, low), compress(lr, low)
    assert a.shape == lr.shape and a.dtype == np.uint8 and np.array_equal(a, b)  # deterministic
    assert psnr(a, lr, border=0) + 3 < psnr(compress(lr, high), lr, border=0)
    assert not np.array_equal(a, lr)


def test_h264_takes_odd_sides_and_a_motion_lead_in(lr):
    odd = np.ascontiguousarray(lr[:47, :63])
    assert compress(odd, "h264:28").shape == odd.shape
    moved = compress(lr, "h264:28", lead_in=[(1, 0), (2, 1)])  # a P-frame after two shifted frames
    assert moved.shape == lr.shape and psnr(moved, lr, border=0) > 25


def test_a_sequence_goes_through_h264_as_one_stream_in_display_order(lr):
    from upscaler.degradations import compress_sequence

    frames = [np.ascontiguousarray(np.roll(lr, 2 * i, axis=1)) for i in range(8)]  # a pan
    out = compress_sequence(frames, 28)
    assert len(out) == 8 and all(o.shape == lr.shape and o.dtype == np.uint8 for o in out)
    scores = [[psnr(o, f, border=0) for f in frames] for o in out]
    assert all(int(np.argmax(row)) == i for i, row in enumerate(scores))  # each frame is its own, in order
    assert np.mean([scores[i][i] for i in range(8)]) + 3 < np.mean(
        [psnr(o, f, border=0) for o, f in zip(compress_sequence(frames, 12), frames)]
    )
    with pytest.raises(ValueError, match="0-51"):
        compress_sequence(frames, 60)


def test_the_harness_measures_models_on_a_compressed_clip(tmp_path):
    import subprocess
    import sys

    from tests.video_helpers import make_clip

    clip = make_clip(tmp_path / "a.mp4", frames=6, size=(64, 48))
    out = tmp_path / "clip.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "compressed_eval.py"
    run = subprocess.run([sys.executable, str(script), "--models", "x2-fast", "--clip", str(clip), "--clip-frames",
                          "4", "--clip-crf", "30", "--json", str(out)], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["input"], r["frames"]) for r in rows] == [("x2-fast", "clean", 4), ("x2-fast", "h264:30", 4)]
    assert rows[1]["psnr"] < rows[0]["psnr"] and rows[1]["bicubic_psnr"] < rows[0]["bicubic_psnr"]


@pytest.mark.parametrize("spec", ["jpeg", "jpeg:0", "jpeg:101", "h264:52", "webp:40", "h264:x"])
def test_bad_compression_specs_name_the_forms(spec):
    with pytest.raises(ValueError, match="jpeg:1-100, h264:0-51"):
        check_compression(spec)


def test_training_pairs_for_compressed_sources_are_sized_and_reproducible(photo):
    from training.compressed import degrade_compressed

    hr = np.ascontiguousarray(modcrop(photo[:200, :200], 8))
    outs = [degrade_compressed(hr, 4, np.random.default_rng(seed)) for seed in (1, 1, 2, 3, 4, 5)]
    assert all(o.shape == (hr.shape[0] // 4, hr.shape[1] // 4, 3) and o.dtype == np.uint8 for o in outs)
    assert np.array_equal(outs[0], outs[1]) and not all(np.array_equal(outs[0], o) for o in outs[2:])


def test_a_mixture_without_degradations_gives_the_protocol_pairs(photo):
    from training.compressed import MIXTURES, Mixture, degrade_compressed

    hr = np.ascontiguousarray(modcrop(photo[:96, :128], 8))
    clean = Mixture(blur=0.0, max_sigma=1.0, kernels=(1.0, 0.0, 0.0), noise=0.0, max_noise=1.0, jpeg=0.0, h264=0.0)
    assert np.array_equal(degrade_compressed(hr, 4, np.random.default_rng(0), clean), bicubic(hr, 4))
    rng = np.random.default_rng(7)
    draws = [degrade_compressed(hr, 4, rng, "focused") for _ in range(40)]
    untouched = sum(np.array_equal(d, bicubic(hr, 4)) for d in draws)
    assert 2 <= untouched <= 16  # about a fifth of the focused pairs are the protocol's own
    assert set(MIXTURES) == {"broad", "focused", "codec-only"}
    plain = bicubic(hr, 4)
    draws = [degrade_compressed(hr, 4, rng, "codec-only") for _ in range(40)]  # every pair through a codec
    assert not any(np.array_equal(d, plain) for d in draws)


def test_eval_degrade_measures_on_compressed_inputs(tmp_path, photo):
    folder = tmp_path / "hr"
    folder.mkdir()
    write_image(folder / "a.png", np.ascontiguousarray(photo[:96, :128]))
    out = {}
    for spec in (None, "jpeg:30"):
        path = tmp_path / f"{spec}.json".replace(":", "-")
        result = run_cli("eval", "-m", "x4-fast", "-d", str(folder), "--json", str(path),
                         *(["--degrade", spec] if spec else []))  # fmt: skip
        assert result.returncode == 0, result.stderr
        out[spec] = json.loads(path.read_text())
    clean, jpeg = out[None]["datasets"][0], out["jpeg:30"]["datasets"][0]
    assert out["jpeg:30"]["compression"] == "jpeg:30" and jpeg["degradation"] == "bicubic+jpeg:30"
    assert jpeg["bicubic_psnr"] < clean["bicubic_psnr"] and jpeg["psnr"] < clean["psnr"]
    bad = run_cli("eval", "-m", "x4-fast", "-d", str(folder), "--degrade", "gif:3")
    assert bad.returncode == 2 and "jpeg:1-100" in bad.stderr


def test_the_video_model_repairs_compressed_input_and_is_what_video_runs(tmp_path, photo):
    from tests.video_helpers import make_clip
    from upscaler import Upscaler, get_model

    hr = modcrop(photo, 4)
    lr = compress(bicubic(hr, 4), "jpeg:30")
    scores = {m: psnr(Upscaler(m, backend="cpu", precision="fp32").upscale(lr), hr, border=4)
              for m in ("x4-fast", "x4-video")}  # fmt: skip
    assert scores["x4-video"] > scores["x4-fast"] + 0.5  # 1.15 dB on this photo when written
    assert get_model("video").name == "x4-video" and get_model("x4-video").degradation == "video"
    clip = make_clip(tmp_path / "a.mp4", frames=3, size=(48, 32))
    result = run_cli("video", str(clip), "-o", str(tmp_path / "b.mp4"), "--json", str(tmp_path / "s.json"), "-q")
    assert result.returncode == 0, result.stderr
    assert "x4-video" in (tmp_path / "s.json").read_text()
    listing = run_cli("models").stdout
    assert any(line.startswith("x4-video v") for line in listing.splitlines())


def test_the_quality_video_model_repairs_what_x4_quality_sharpens(photo):
    from upscaler import Upscaler, get_model

    hr = modcrop(photo, 4)
    lr = compress(bicubic(hr, 4), "jpeg:30")
    scores = {m: psnr(Upscaler(m, backend="cpu", precision="fp32").upscale(lr), hr, border=4)
              for m in ("x4-quality", "x4-video", "x4-video-quality")}  # fmt: skip
    assert scores["x4-video-quality"] > scores["x4-quality"] + 0.5
    assert scores["x4-video-quality"] > scores["x4-video"]
    assert get_model("x4-video-quality").degradation == "video"


def test_the_harness_with_source_auto_says_which_model_ran(tmp_path):
    import subprocess
    import sys

    from tests.video_helpers import make_clip

    clip = make_clip(tmp_path / "a.mp4", frames=6, size=(64, 48))
    out = tmp_path / "clip.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "compressed_eval.py"
    run = subprocess.run([sys.executable, str(script), "--models", "x2-video", "--source", "auto", "--clip", str(clip),
                          "--clip-frames", "4", "--clip-crf", "30", "--json", str(out)], capture_output=True,
                         text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["input"], r["models_run"]) for r in rows] == [("clean", {"x2-fast": 4}), ("h264:30", {"x2-video": 4})]


def test_the_detection_harness_counts_what_the_grid_finds(tmp_path, set5_dir):
    import subprocess
    import sys

    out = tmp_path / "d.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "source_detection.py"
    run = subprocess.run([sys.executable, str(script), "--data", str(set5_dir), "--scales", "4", "--degrade",
                          "jpeg:50", "--json", str(out)], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = {r["input"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["clean"]["judged_compressed"] == 0.0 and rows["jpeg:50"]["judged_compressed"] == 1.0
    assert rows["clean"]["images"] == 5
