"""The clip stability figure (upscaler.bench.stability) where the answer is known, and ``upscaler bench --clip``."""

from __future__ import annotations

import json
import math
import statistics
from fractions import Fraction

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import run_cli
from upscaler.bench.stability import (
    FLOW_METHODS,
    ClipSubject,
    PairFlow,
    bicubic_subject,
    consistency_mask,
    pair_flow,
    run_clip,
    skipped_pairs,
    still_mask,
    summarise,
    warp_by_flow,
    warping_error,
)

SCALE = 4
NOISE = 8.0  # grey levels
#: E|a - b| for independent a, b ~ N(0, s^2) is 2 s / sqrt(pi)
NOISE_ERROR = 2 * NOISE / math.sqrt(math.pi)


def _texture(seed: int, shape=(160, 240)) -> np.ndarray:
    """Smooth random RGB texture (float, mid-grey, std 30): no clipping when noise is added."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (*shape, 3)).astype(np.float32), (0, 0), 2.0)
    return 128 + (tex - tex.mean()) * (30 / tex.std())


@pytest.fixture(scope="module")
def scene():
    """A translating scene: LR frame t is a window moved right by t pixels; its output the same window of
    the 4x texture, moved by 4t (what a perfectly stable upscaler gives)."""
    lr_tex = _texture(0)
    hr_tex = cv2.resize(lr_tex, (lr_tex.shape[1] * SCALE, lr_tex.shape[0] * SCALE), interpolation=cv2.INTER_CUBIC)

    def lr(t: int, tex=lr_tex) -> np.ndarray:
        return tex[20:84, 20 + t : 116 + t].round().astype(np.uint8)

    def hr(t: int) -> np.ndarray:
        s = SCALE
        return hr_tex[20 * s : 84 * s, (20 + t) * s : (116 + t) * s].round().astype(np.uint8)

    return lr, hr


def _noisy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (image + rng.normal(0, NOISE, image.shape)).round().clip(0, 255).astype(np.uint8)


def _exact(h: int, w: int, dx: float, dy: float = 0.0) -> PairFlow:
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    mask = np.zeros((h, w), bool)
    mask[4:-4, 4:-4] = True
    return PairFlow(flow, mask)


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_identical_content_shifted_has_almost_no_warping_error(scene, method):
    lr, hr = scene
    pair = pair_flow(lr(0), lr(1), method=method)
    assert pair.reliable > 0.8
    # previous = current + flow: the content moved left by one pixel, so it was one pixel to the right
    assert np.median(pair.flow[..., 0][pair.mask]) == pytest.approx(1.0, abs=0.02)
    assert warping_error(hr(0), hr(1), pair, SCALE) < 0.3
    assert warping_error(lr(0), lr(1), pair) < 0.3
    # without the warp the same pair changes a lot: the figure does see motion it is not told about
    assert warping_error(hr(0), hr(1), _exact(64, 96, 0.0), SCALE) > 3.0


def test_per_frame_noise_raises_it_by_the_expected_amount(scene):
    lr, hr = scene
    rng = np.random.default_rng(1)
    exact = _exact(64, 96, 1.0)
    clean = warping_error(hr(0), hr(1), exact, SCALE)
    assert clean < 0.01  # an integer shift: the warp is exact
    noisy = warping_error(_noisy(hr(0), rng), _noisy(hr(1), rng), exact, SCALE)
    assert noisy == pytest.approx(NOISE_ERROR, rel=0.03)
    # with the flow estimated from the (clean) input: bilinear warps of a slightly wrong flow smooth the noise a bit
    estimated = pair_flow(lr(0), lr(1))
    noisy = warping_error(_noisy(hr(0), rng), _noisy(hr(1), rng), estimated, SCALE)
    assert noisy == pytest.approx(NOISE_ERROR, rel=0.08)


@settings(max_examples=25, deadline=None)
@given(dx=st.integers(-3, 3), dy=st.integers(-3, 3), scale=st.sampled_from([1, 2, 4]))
def test_an_exact_integer_flow_undoes_the_shift(dx, dy, scale):
    rng = np.random.default_rng((dx + 3) * 7 + dy + 3)
    big = rng.integers(0, 256, (40 * scale, 40 * scale, 3), dtype=np.uint8)
    # current pixel p shows what the previous frame showed at p + (dx, dy)
    previous = big[8 * scale : 32 * scale, 8 * scale : 32 * scale]
    current = big[(8 + dy) * scale : (32 + dy) * scale, (8 + dx) * scale : (32 + dx) * scale]
    warped, inside = warp_by_flow(previous, _exact(24, 24, dx, dy).flow, scale)
    assert np.array_equal(warped[inside].astype(np.uint8), current[inside])
    assert warping_error(previous, current, _exact(24, 24, dx, dy), scale) == 0.0


def test_still_and_moving_pixels_are_told_apart(scene):
    _, hr = scene
    rng = np.random.default_rng(4)
    pair = _exact(64, 96, 1.0)
    pair.flow[:, :48] = 0.0  # the left half stands still...
    previous = hr(0).copy()
    previous[:, : 48 * SCALE] = hr(1)[:, : 48 * SCALE]  # ...and shows the same picture in both frames
    current = hr(1).copy()
    current[:, : 48 * SCALE] = _noisy(hr(1)[:, : 48 * SCALE], rng)  # where it flickers
    still = still_mask(pair)
    assert still[:, :48].all() and not still[:, 48:].any()
    pair.mask[:, 47:49] = False  # the flow is resized bilinearly: it blends the halves across their border
    one_noisy_frame = NOISE_ERROR / math.sqrt(2)
    assert warping_error(previous, current, pair, SCALE, where=still) == pytest.approx(one_noisy_frame, rel=0.05)
    assert warping_error(previous, current, pair, SCALE, where=~still) < 0.01


def test_consistency_rejects_flows_that_disagree():
    h, w = 20, 30
    backward = np.zeros((h, w, 2), np.float32)
    backward[..., 0] = -1.0
    forward = np.zeros((h, w, 2), np.float32)
    forward[..., 0] = 1.0
    mask = consistency_mask(backward, forward)
    assert not mask[:, 0].any() and mask[:, 1:].all()  # column 0 came from outside the previous frame
    forward[5:10, 5:10, 0] = 3.0  # an occluder the backward flow does not see
    mask = consistency_mask(backward, forward)
    assert not mask[5:10, 6:11].any() and mask[12:, 12:].all()


def test_find_cuts_skips_outliers_and_failed_flow():
    errors = [1.0, 1.2, 0.9, 30.0, 1.1, float("nan"), 1.0]
    reliable = [0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.05]
    assert skipped_pairs(errors) == [None, None, None, "cut", None, "unreliable", None]
    assert skipped_pairs(errors, reliable)[3] == "unreliable" and skipped_pairs(errors, reliable)[6] == "unreliable"
    assert skipped_pairs([3.0, 3.5, 12.0]) == [None, None, None]  # above 4x median but under the floor
    assert skipped_pairs([1.0, 1.0, 5.0], floor=2.0) == [None, None, "cut"]
    assert summarise([1.0, 3.0, 99.0, 2.0], [None, None, "cut", None]) == {"mean": 2.0, "median": 2.0, "pairs": 3}


def test_a_cut_pair_is_skipped_for_every_subject(scene):
    lr, _ = scene
    other = _texture(5)
    frames = [lr(t) for t in range(5)] + [lr(t, other) for t in range(5, 9)]
    rng = np.random.default_rng(2)
    bicubic = bicubic_subject(SCALE)
    noisy = ClipSubject("noisy", "single-frame", SCALE, lambda f: _noisy(bicubic.step(f).astype(np.float32), rng))
    report = run_clip(iter(frames), [noisy, bicubic], reference="noisy")
    skipped = [p["skipped"] for p in report["pairs"]]
    assert skipped == [None] * 4 + ["cut"] + [None] * 3
    assert report["pairs"][4]["input_error"] > 10 * report["input"]["median"]
    by_name = {s["name"]: s for s in report["subjects"]}
    for s in by_name.values():
        kept = [e for e, why in zip(s["errors"], skipped, strict=True) if why is None]
        assert s["pairs"] == 7 and s["mean"] == pytest.approx(np.mean(kept), abs=2e-3)
        assert s["errors"][4] > max(20.0, 3 * s["median"])  # the cut itself would have dominated the mean
    assert by_name["bicubic"]["mean"] < 0.5
    assert by_name["noisy"]["mean"] == pytest.approx(NOISE_ERROR, rel=0.1)
    assert by_name["noisy"]["ratio_to_reference"] == 1.0
    assert by_name["bicubic"]["ratio_to_reference"] < 0.1 and by_name["bicubic"]["ratio_to_bicubic"] == 1.0


def _write_clip(path, frames: int = 10, size=(96, 64)) -> None:
    """A real H.264 clip of a textured picture moving one pixel right and down every frame."""
    import av

    w, h = size
    tex = _texture(3, (h + 2 * frames, w + 2 * frames))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.codec_context.options = {"crf": "12", "g": "6"}
        for i in range(frames):
            rgb = tex[i : i + h, i : i + w].round().astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 12)
            for packet in video.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)


def test_bench_clip_writes_every_subject_side_by_side(tmp_path):
    clip, out = tmp_path / "moving.mp4", tmp_path / "stability.json"
    _write_clip(clip)
    result = run_cli(
        "bench", "--clip", str(clip), "--frames", "7", "--clip-start", "1", "--size", "48x32",
        "-m", "x4-temporal", "x4-fast", "--engine", "onnxruntime-cpu", "--precision", "fp32",
        "--json", str(out), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["mode"] == "clip" and "--clip" in report["command"]
    assert report["machine"]["cpu"] and report["machine"]["cores"] >= 1
    assert report["clip"]["source"] == "96x64" and report["clip"]["start"] == 1
    assert "INTER_AREA" in report["clip"]["reduced"] and "48x32" in report["clip"]["reduced"]
    st = report["settings"]
    assert (st["frames"], st["input"], st["output"], st["scale"], st["flow"]) == (7, "48x32", "192x128", 4, "farneback")
    assert report["reference"] == "x4-fast" and len(report["pairs"]) == 6
    assert all(p["skipped"] is None for p in report["pairs"])  # a smooth pan: no cut
    subjects = {s["name"]: s for s in report["subjects"]}
    assert list(subjects) == ["x4-temporal", "x4-fast", "bicubic"]
    assert (subjects["x4-temporal"]["motion"], subjects["x4-temporal"]["jitter"]) == ("estimated", "zero")
    assert subjects["x4-fast"]["kind"] == "single-frame" and subjects["x4-fast"]["ratio_to_reference"] == 1.0
    for s in subjects.values():
        assert s["pairs"] == 6 and len(s["errors"]) == 6
        assert s["mean"] == pytest.approx(statistics.fmean(s["errors"]), abs=2e-3)  # the pairs' mean, none skipped
        assert s["median"] == pytest.approx(statistics.median(s["errors"]), abs=2e-3) and s["detail"] > 0
        assert s["moving"] == pytest.approx(s["mean"], rel=0.15)  # everything moves, half a pixel a frame
        assert s["ratio_to_bicubic"] == pytest.approx(s["mean"] / subjects["bicubic"]["mean"], abs=2e-3)
    assert "x4-temporal" in result.stdout and "x bicubic" in result.stdout


def test_bench_clip_keeps_the_clips_aspect_ratio_inside_the_size_asked(tmp_path):
    clip, out = tmp_path / "moving.mp4", tmp_path / "stability.json"
    _write_clip(clip)  # 96x64 (3:2)
    result = run_cli("bench", "--clip", str(clip), "--frames", "3", "--size", "48x48", "-m", "x4-fast",
                     "--engine", "onnxruntime-cpu", "--json", str(out), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["clip"]["input"] == "48x32" and report["settings"]["output"] == "192x128"  # not squashed to 1:1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clip", "/no/such/clip.mp4"], "no such file"),
        (["--sequences", "."], "separate modes"),
        (["--size", "48x32", "64x48"], "one --size"),
        (["--frames", "1"], "--frames"),
    ],
)
def test_bad_clip_arguments_are_one_clear_line(tmp_path, args, message):
    clip = tmp_path / "c.mp4"
    _write_clip(clip, frames=3, size=(32, 32))
    result = run_cli("bench", "--clip", str(clip), *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
