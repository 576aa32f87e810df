"""TensorRT's plain-Python parts: shape profiles, cache keys, the engine cache, and tiling outside a profile.

TensorRT itself cannot be installed here; the tiling is checked with the real
ONNX Runtime engine standing in for the engine that only takes profile shapes,
and its values against a whole-frame run of the same engine.
"""

import importlib.util
import itertools
import json

import numpy as np
import pytest

from tests.conftest import run_cli
from upscaler.models import default_model, get_model
from upscaler.runtime import create_engine
from upscaler.runtime.base import EngineOptions
from upscaler.runtime.ort_cpu import OrtCpuEngine
from upscaler.runtime.profiles import (
    DEFAULT_PROFILE,
    EngineCache,
    EngineCacheError,
    ShapeProfile,
    cache_key,
    parse_profile,
    read_plan,
    run_within_profile,
    spans,
)

KEY = dict(
    onnx_sha256="ab" * 32, tensorrt="10.3.0", gpu="NVIDIA H100 80GB HBM3", compute_capability="9.0",
    precision="fp16", profile=DEFAULT_PROFILE,
)  # fmt: skip


def test_profiles_parse_check_and_print():
    p = parse_profile("1x8x8:2x540x960:4x1080x1920")
    assert p == ShapeProfile((1, 8, 8), (2, 540, 960), (4, 1080, 1920))
    assert p.shape_text("opt") == "2x3x540x960" and p.full("max") == (4, 3, 1080, 1920)
    assert p.fits((4, 3, 1080, 1920)) and not p.fits((5, 3, 8, 8)) and not p.fits((1, 3, 7, 100))
    for bad in ("1x8x8:2x540x960", "1x8:1x8x8:1x8x8", "2x8x8:1x8x8:4x8x8", "0x1x1:1x1x1:1x1x1"):
        with pytest.raises(ValueError):
            parse_profile(bad)


def test_cache_keys_change_with_everything_an_engine_depends_on(tmp_path):
    cache = EngineCache(tmp_path)
    base = cache_key(**KEY)
    variants = [
        {"onnx_sha256": "cd" * 32}, {"tensorrt": "10.4.0"}, {"gpu": "NVIDIA H200"}, {"compute_capability": "8.9"},
        {"precision": "int8"}, {"profile": parse_profile("1x1x1:1x270x480:1x540x960")},
    ]  # fmt: skip
    paths = {cache.path("x4-fast", cache_key(**{**KEY, **v})) for v in variants}
    assert len(paths | {cache.path("x4-fast", base)}) == len(variants) + 1


def test_a_plan_is_reused_only_for_its_own_key_and_never_half_written(tmp_path):
    cache = EngineCache(tmp_path)
    key = cache_key(**KEY)
    assert cache.load("x4-fast", key) is None
    path = cache.store("x4-fast", key, b"plan-bytes" * 10)
    assert cache.load("x4-fast", key) == b"plan-bytes" * 10
    assert not list(tmp_path.glob(".*.part"))
    # another GPU or TensorRT version: not loaded (the engine rebuilds)
    assert cache.load("x4-fast", cache_key(**{**KEY, "gpu": "NVIDIA A100"})) is None
    # the key file edited to claim another build: the plan is not trusted
    meta = path.with_suffix(".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "tensorrt": "9.0.0"}))
    assert cache.load("x4-fast", key) is None
    meta.write_text("{broken")
    assert cache.load("x4-fast", key) is None
    cache.evict("x4-fast", key)
    assert not path.exists() and not meta.exists()


def test_engine_files_given_by_hand_are_checked(tmp_path):
    with pytest.raises(EngineCacheError, match="not found"):
        read_plan(tmp_path / "missing.plan")
    (tmp_path / "short.plan").write_bytes(b"x" * 10)
    with pytest.raises(EngineCacheError, match="truncated or broken"):
        read_plan(tmp_path / "short.plan")


def test_spans_cover_every_pixel_once_with_context():
    for length, limit, halo in [(10, 10, 3), (100, 16, 3), (37, 9, 4), (1000, 1080, 6), (17, 3, 1)]:
        parts = spans(length, limit, halo)
        cores = [(c0, c1) for _, _, c0, c1 in parts]
        assert cores[0][0] == 0 and cores[-1][1] == length
        assert all(a[1] == b[0] for a, b in itertools.pairwise(cores))
        for r0, r1, c0, c1 in parts:
            assert r1 - r0 <= limit and r0 == max(0, c0 - halo) and r1 == min(length, c1 + halo)
    with pytest.raises(ValueError, match="no room"):
        spans(100, 6, 3)


def test_inputs_outside_the_profile_are_split_and_tiled_to_the_same_result(set5):
    model = default_model()
    engine = create_engine(model, "onnxruntime-cpu")
    profile = parse_profile("1x16x16:1x32x32:2x40x48")
    seen = []

    def only_in_profile(batch):
        assert profile.fits(batch.shape), batch.shape
        seen.append(batch.shape)
        return engine.run(batch)

    frames = [set5[name][:90, :110] for name in ("bird", "baby", "woman")]  # 3 frames: more than the batch limit
    batch = np.stack([f.transpose(2, 0, 1) for f in frames]).astype(np.float32) / 255
    whole = engine.run(batch)
    tiled = run_within_profile(batch, only_in_profile, profile, model.scale, model.receptive_field)
    assert tiled.shape == whole.shape and np.abs(tiled - whole).max() < 1e-4
    assert len(seen) > 4  # it really was split


def test_frames_below_the_profile_minimum_give_the_whole_frame_values(set5):
    """Padding feeds no output pixel that is kept, so border pixels equal a whole-frame run's.

    The network zero-pads its convolutions at the frame border; any padding
    before it (edge, reflection, zeros) changes the outputs within its
    receptive field of the padding: edge-padding once and cropping was off by
    up to 39 levels (of 255) on these frames. Below the minimum each axis runs twice,
    padded after and before, keeping each half from the run whose padding it
    cannot see; short tiles read more of the image instead of padding.
    """
    model = get_model("x4-fast")
    engine = OrtCpuEngine(model, EngineOptions(precision="fp32"))
    halo = model.receptive_field
    for text in ("1x16x16:1x32x32:2x40x48", "2x16x16:2x24x24:3x40x48"):  # the second pads the batch too
        profile = parse_profile(text)

        def only_in_profile(batch, profile=profile):
            assert profile.fits(batch.shape), batch.shape
            return engine.run(batch)

        # below the minimum in one or both axes (down to 2 x halo), short last tiles, both at once
        for h, w in [(12, 11), (2 * halo, 2 * halo + 1), (9, 30), (70, 20), (15, 100)]:
            for name in ("butterfly", "baby", "bird"):
                crop = set5[name][40 : 40 + h, 60 : 60 + w]
                batch = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], np.float32) / 255
                whole = engine.run(batch)
                tiled = run_within_profile(batch, only_in_profile, profile, model.scale, halo)
                assert np.abs(tiled - whole).max() < 1e-5, (text, name, h, w)


def test_frames_too_small_to_reproduce_are_refused(set5):
    """Shorter than the minimum and than twice the receptive field: no run inside the profile gives its border."""
    model = get_model("x4-fast")
    profile = parse_profile("1x16x16:1x32x32:2x40x48")
    batch = np.zeros((1, 3, 2 * model.receptive_field - 1, 20), np.float32)
    with pytest.raises(ValueError, match=r"height of 7 px is below the TensorRT profile's minimum \(16\)"):
        run_within_profile(batch, lambda b: b, profile, model.scale, model.receptive_field)
    frame = np.zeros((1, 3, 7, 5), np.float32)  # fine where the profile's minimum is 1
    out = run_within_profile(frame, lambda b: np.repeat(np.repeat(b, 4, 2), 4, 3), DEFAULT_PROFILE, 4, 4)
    assert out.shape == (1, 3, 28, 20)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_export_tensorrt_without_tensorrt_is_one_clear_line():
    result = run_cli("export", "tensorrt", "-m", "x4-fast")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "tensorrt" in result.stderr.lower() or "nvidia" in result.stderr.lower()
