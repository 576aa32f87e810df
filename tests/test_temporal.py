"""Temporal super-sampling: the jitter and motion conventions, the step's pieces, the API's state handling and
bad input, and the exported graphs' parity with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from upscaler import TemporalUpscaler
from upscaler.archs.temporal import TemporalSR, reproject, sample_weights
from upscaler.models import ModelError, get_model
from upscaler.runtime.stream import fold_reproject
from upscaler.sequences import Camera, SequenceSpec, jitter_sequence, make_sequence
from upscaler.temporal import PlainAccumulator


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small random temporal model with both graphs exported: tests the machinery, not the quality."""
    from export.temporal import export_temporal

    torch.manual_seed(0)
    net = TemporalSR(4, channels=8, blocks=1, history_channels=4)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("temporal") / "tiny.safetensors"
    meta = {"name": "tiny", "arch": "temporal", "scale": "4", "degradation": "sequence", "training": "{}",
            "params": json.dumps(net.inference_params())}  # fmt: skip
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    export_temporal(get_model(path), path.with_suffix(".onnx"), path.with_suffix(".folded.onnx"))
    return path


def _scene(h=96, w=128, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pan(frames=6, velocity=(0.7, -0.3), size=(24, 16), seed=0):
    scene = _scene(seed=seed)
    spec = SequenceSpec(4, size, frames, Camera(center=(64, 48), velocity=(velocity[0] * 4, velocity[1] * 4)))
    return make_sequence(scene, spec)


# --- conventions -------------------------------------------------------------------------------------------


def test_jitter_sequence_is_halton_2_3_in_range():
    jitters = jitter_sequence(16)
    assert jitters[0] == (0.0, pytest.approx(1 / 3 - 0.5)) and jitters[1] == (-0.25, pytest.approx(2 / 3 - 0.5))
    assert all(-0.5 <= j < 0.5 for pair in jitters for j in pair) and len(set(jitters)) == 16


def test_a_frame_samples_the_scene_at_pixel_centre_plus_jitter():
    """A horizontal ramp scene: each LR pixel's value tells where it sampled."""
    ramp = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (64, 1))
    scene = np.repeat(ramp[..., None], 3, axis=2)
    jitter = (-0.25, 0.125)
    spec = SequenceSpec(2, (16, 8), 1, Camera(center=(128, 32)), jitter=(jitter,))
    lr = make_sequence(scene, spec)[0].lr[..., 0].astype(float) / 255
    # screen x (HR px) of LR pixel x: (x + 0.5 + jx) * 2; source x = screen - 16 + 128; ramp value = (src - 0.5) / 255
    expected = (((np.arange(16) + 0.5 + jitter[0]) * 2 - 16 + 128) - 0.5) / 255
    assert np.abs(lr[4] - expected).max() < 1 / 255


def test_motion_points_to_where_the_surface_was_in_the_previous_frame():
    frames = _pan(frames=3, velocity=(1.0, 0.0))
    # the camera moved 1 LR px right: the surface now at x was at x + 1 before
    assert np.allclose(frames[2].motion[..., 0], 1.0) and np.allclose(frames[2].motion[..., 1], 0.0)
    same = SequenceSpec(4, (24, 16), 3, Camera(center=(64, 48), velocity=(4.0, 0.0)), jitter=((0.1, 0.2),))
    a, b = make_sequence(_scene(), same)[1:]
    assert np.abs(b.lr[:, :-1].astype(int) - a.lr[:, 1:]).max() <= 1  # with one jitter: the picture moved 1 px left


def test_sample_weights_peak_at_the_sub_pixel_the_sample_fell_in():
    for jx, jy in [(-0.5, -0.5), (-0.375, 0.125), (0.3, -0.2), (0.49, 0.49)]:
        w = sample_weights(torch.tensor([[jx, jy]]), 4)[0, :, 0, 0].reshape(4, 4)
        row, col = divmod(int(w.argmax()), 4)
        assert (row, col) == (int((0.5 + jy) * 4), int((0.5 + jx) * 4))


@pytest.mark.parametrize("motion", [(1.0, 0.0), (0.0, -2.0), (0.25, 0.5)])
def test_reprojection_moves_the_history_by_the_motion_in_torch_and_opencv(motion):
    """A known shift gives the known answer: previous = current + motion, whole HR pixels when motion * 4 is."""
    rng = np.random.default_rng(1)
    history = rng.random((3, 32, 48), dtype=np.float32)
    m = np.empty((2, 8, 12), np.float32)
    m[0], m[1] = motion
    dx, dy = int(motion[0] * 4), int(motion[1] * 4)
    expected = np.roll(history, (-dy, -dx), axis=(1, 2))
    ours = reproject(torch.from_numpy(history[None]), torch.from_numpy(m[None]), 4)[0].numpy()
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert np.abs(ours - expected)[inner].max() < 1e-5
    folded = fold_reproject(history, m, 4)
    unfolded = torch.nn.functional.pixel_shuffle(torch.from_numpy(folded[None]), 4)[0].numpy()
    assert np.abs(unfolded - ours).max() < 1e-4  # the CPU engine's reprojection is the graph's


def test_plain_accumulation_gathers_the_jittered_samples_of_a_still_scene():
    frames = _pan(frames=16, velocity=(0.0, 0.0))
    acc = PlainAccumulator(4)
    outs = [acc.step(f.lr, f.jitter, f.motion) for f in frames]
    err = [np.abs(o.astype(float) - f.hr).mean() for o, f in zip(outs, frames)]
    assert err[-1] < 0.7 * err[0]


# --- the API -----------------------------------------------------------------------------------------------


def test_temporal_upscaler_returns_the_scaled_frame_and_counts(tiny):
    ts = TemporalUpscaler(tiny, "onnxruntime-cpu")
    frames = _pan(frames=3)
    out = [ts.upscale(f.lr, f.jitter, f.motion) for f in frames]
    assert out[0].shape == (64, 96, 3) and out[0].dtype == np.uint8 and ts.frames == 3 and ts.scale == 4


def test_onnxruntime_and_torch_engines_agree_over_a_sequence(tiny):
    frames = _pan(frames=6)
    a, b = TemporalUpscaler(tiny, "onnxruntime-cpu"), TemporalUpscaler(tiny, "torch-cpu")
    for f in frames:
        x, y = a.upscale(f.lr, f.jitter, f.motion), b.upscale(f.lr, f.jitter, f.motion)
        assert np.abs(x.astype(int) - y).max() <= 1


def test_torch_temporal_8_bit_steps_equal_the_float_steps_and_keep_the_same_history(tiny):
    from upscaler.runtime.select import create_engine
    from upscaler.runtime.stream import rgb8_output as _to_image

    floats = create_engine(get_model(tiny), "torch-cpu")
    eights = floats.fork()  # the same network, its own history
    for t, f in enumerate(_pan(frames=5) + _pan(frames=2, size=(20, 12), seed=3)):  # a size change starts afresh
        batch = np.ascontiguousarray(f.lr.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1 / 255)
        mv = np.ascontiguousarray(f.motion.transpose(2, 0, 1)[None])
        expected = _to_image(floats.step(batch, np.array([f.jitter], np.float32), mv, reset=t in (0, 5))[0])
        got = eights.step_rgb8(f.lr, f.jitter, f.motion, reset=t in (0, 5))
        assert got.dtype == np.uint8 and got.shape == expected.shape and np.abs(got.astype(int) - expected).max() <= 1
        assert torch.equal(floats._history, eights._history)  # the history stays float, on the device


def test_reset_and_size_change_start_a_new_stream(tiny):
    frames, other = _pan(frames=4), _pan(frames=1, size=(20, 12), seed=3)
    ts = TemporalUpscaler(tiny, "onnxruntime-cpu")
    for f in frames[:3]:
        ts.upscale(f.lr, f.jitter, f.motion)
    fresh = TemporalUpscaler(tiny, "onnxruntime-cpu").upscale(frames[3].lr, frames[3].jitter, frames[3].motion)
    assert np.array_equal(ts.upscale(frames[3].lr, frames[3].jitter, frames[3].motion, reset=True), fresh)
    resized = ts.upscale(other[0].lr, other[0].jitter, other[0].motion)  # a new size: history dropped
    assert resized.shape == (48, 80, 3) and ts.frames == 1
    assert np.array_equal(resized, TemporalUpscaler(tiny, "onnxruntime-cpu").upscale(other[0].lr, other[0].jitter))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"motion": np.zeros((16, 24, 3), np.float32)}, "16 x 24 x 2"),
        ({"motion": np.zeros((16, 24, 2), np.float64)}, "float32"),
        ({"motion": np.full((16, 24, 2), np.nan, np.float32)}, "NaN"),
        ({"jitter": (0.5, 0.0)}, r"\[-0.5, 0.5\)"),
        ({"jitter": (0.1,)}, "two numbers"),
        ({"frame": np.zeros((16, 24, 3), np.float32)}, "uint8"),
        ({"frame": np.zeros((16, 24), np.uint8)}, "H x W x 3"),
        ({"depth": np.zeros((15, 24), np.float32)}, "depth"),
    ],
)
def test_bad_input_is_refused_clearly_and_the_stream_goes_on_unharmed(tiny, change, message):
    frames = _pan(frames=3)
    clean, hurt = TemporalUpscaler(tiny, "onnxruntime-cpu"), TemporalUpscaler(tiny, "onnxruntime-cpu")
    for ts in (clean, hurt):
        ts.upscale(frames[0].lr, frames[0].jitter, frames[0].motion)
    args = {"frame": frames[1].lr, "jitter": frames[1].jitter, "motion": frames[1].motion, **change}
    with pytest.raises((ValueError, TypeError), match=message):
        hurt.upscale(**args)
    for f in frames[1:]:
        assert np.array_equal(hurt.upscale(f.lr, f.jitter, f.motion), clean.upscale(f.lr, f.jitter, f.motion))


def test_motion_none_estimates_the_motion_of_a_pan(tiny, set5):
    from upscaler.temporal.flow import MotionEstimator

    spec = SequenceSpec(4, (48, 48), 3, Camera(center=(128, 128), zoom=0.8, velocity=(4.0, 2.0)))
    frames = make_sequence(set5["butterfly"], spec)
    flow = MotionEstimator()
    flow.estimate(frames[1].lr, frames[1].jitter)
    estimate = flow.estimate(frames[2].lr, frames[2].jitter)
    inner = estimate[8:-8, 8:-8]
    assert np.abs(np.median(inner[..., 0]) - 1.0) < 0.25 and np.abs(np.median(inner[..., 1]) - 0.5) < 0.25
    ts = TemporalUpscaler(tiny, "onnxruntime-cpu")
    assert ts.upscale(frames[0].lr, frames[0].jitter).shape == (192, 192, 3)


def test_the_medium_flow_preset_is_the_default_and_closer_to_the_true_motion(tiny, set5):
    from upscaler.temporal.flow import MotionEstimator

    spec = SequenceSpec(4, (64, 48), 4, Camera(center=(128, 128), zoom=0.8, velocity=(1.3, 0.6)))
    frames = make_sequence(set5["butterfly"], spec)

    def error(flow: MotionEstimator) -> float:
        for f in frames[:-1]:
            flow.estimate(f.lr, f.jitter)
        estimate = flow.estimate(frames[-1].lr, frames[-1].jitter)
        return float(np.abs(estimate - frames[-1].motion)[6:-6, 6:-6].mean())

    assert MotionEstimator().preset == "medium"
    assert error(MotionEstimator("medium")) < 0.7 * error(MotionEstimator("ultrafast"))  # 0.14 against 0.28 px
    with pytest.raises(ValueError, match="flow preset must be one of ultrafast, fast, medium"):
        TemporalUpscaler(tiny, "onnxruntime-cpu", flow="slow")


@pytest.mark.parametrize("backend", ["onnxruntime-cpu", "torch-cpu"])
def test_a_forked_engine_is_a_new_stream_on_the_same_network(tiny, backend):
    frames = _pan(frames=5)
    first, solo = TemporalUpscaler(tiny, backend), TemporalUpscaler(tiny, backend)
    for f in frames[:3]:  # the original has a history
        first.upscale(f.lr, f.jitter, f.motion)
        solo.upscale(f.lr, f.jitter, f.motion)
    twin = TemporalUpscaler(tiny, engine=first.engine.fork())
    shared = "_session" if backend == "onnxruntime-cpu" else "_net"
    assert getattr(twin.engine, shared) is getattr(first.engine, shared)  # one loaded network
    fresh = TemporalUpscaler(tiny, backend)
    for f in frames[3:]:  # the twin starts empty ...
        assert np.array_equal(twin.upscale(f.lr, f.jitter, f.motion), fresh.upscale(f.lr, f.jitter, f.motion))
    for f in frames[3:]:  # ... and stepping it left the original's history alone
        assert np.array_equal(first.upscale(f.lr, f.jitter, f.motion), solo.upscale(f.lr, f.jitter, f.motion))


def test_single_frame_and_temporal_models_are_not_mixed_up(tiny):
    from upscaler import Upscaler

    with pytest.raises(ModelError, match="single-frame"):
        TemporalUpscaler("x4-fast")
    with pytest.raises(ModelError, match="TemporalUpscaler"):
        Upscaler(tiny)


def test_exported_graphs_match_pytorch_over_a_sequence(tiny):
    from export.temporal import check_temporal_parity

    model = get_model(tiny)
    report = check_temporal_parity(model, tiny.with_suffix(".onnx"), tiny.with_suffix(".folded.onnx"), _pan(6))
    assert report.full < 1e-4 and report.folded < 1e-3 and report.frames == 6


# --- the shipped temporal models -----------------------------------------------------------------------------

#: every built-in temporal model (x4-temporal: x4-temporal-quality's design, a quarter of its convolutions)
SHIPPED = ["x4-temporal", "x4-temporal-quality", "x2-temporal"]


def _psnr_after(outputs, frames, start, scale):
    from upscaler.metrics import psnr

    return float(np.mean([psnr(o, f.hr, border=scale) for o, f in list(zip(outputs, frames))[start:]]))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_temporal_model_gathers_detail_bicubic_misses(name, set5):
    import cv2

    model = get_model(name)
    s = model.scale
    spec = SequenceSpec(s, (48, 40), 14, Camera(center=(128, 128), velocity=(0.63 * s, 0.27 * s)))
    frames = make_sequence(set5["butterfly"], spec)
    ts = TemporalUpscaler(name, "onnxruntime-cpu")
    ours = [ts.upscale(f.lr, f.jitter, f.motion) for f in frames]
    bicubic = [cv2.resize(f.lr, (f.hr.shape[1], f.hr.shape[0]), interpolation=cv2.INTER_CUBIC) for f in frames]
    assert _psnr_after(ours, frames, 8, s) > _psnr_after(bicubic, frames, 8, s) + 3.0


#: how far each model is over plain accumulation on a fast pan at least (dB): x4-temporal's known weakness
#: is there (0.44 dB under it on the held-out set's fast pans, the README says; 0.88 under here)
PAN_MARGIN = {"x4-temporal-quality": 0.3, "x2-temporal": 0.3, "x4-temporal": -1.2}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_temporal_model_beats_plain_accumulation_on_a_pan(name, set5):
    """x4-temporal-quality matched plain accumulation here (29.69 against 29.70 dB) until its display filters
    sharpened what it shows; x4-temporal, a quarter of its network, is held to its known distance under it."""
    model = get_model(name)
    s = model.scale
    spec = SequenceSpec(s, (48, 40), 14, Camera(center=(128, 128), velocity=(0.63 * s, 0.27 * s)))
    frames = make_sequence(set5["butterfly"], spec)
    ts, acc = TemporalUpscaler(name, "onnxruntime-cpu"), PlainAccumulator(s)
    ours = [ts.upscale(f.lr, f.jitter, f.motion) for f in frames]
    accumulated = [acc.step(f.lr, f.jitter, f.motion) for f in frames]
    assert _psnr_after(ours, frames, 8, s) > _psnr_after(accumulated, frames, 8, s) + PAN_MARGIN[name]


def test_shipped_temporal_model_drops_stale_history_after_an_unsignalled_cut(set5):
    import cv2

    spec = SequenceSpec(4, (48, 40), 14, Camera(center=(128, 128), velocity=(2.4, 1.1)), cut_at=10,
                        cut_camera=Camera(center=(140, 120), velocity=(-1.5, 0.8)))  # fmt: skip
    frames = make_sequence(set5["woman"], spec, set5["baby"])
    ts, acc = TemporalUpscaler("x4-temporal", "onnxruntime-cpu"), PlainAccumulator(4)
    ours = [ts.upscale(f.lr, f.jitter, f.motion) for f in frames]  # never told about the cut
    stale = [acc.step(f.lr, f.jitter, f.motion) for f in frames]
    bicubic = [cv2.resize(f.lr, (f.hr.shape[1], f.hr.shape[0]), interpolation=cv2.INTER_CUBIC) for f in frames]
    after = {
        k: _psnr_after(v[10:13], frames[10:13], 0, 4) for k, v in (("ours", ours), ("acc", stale), ("bic", bicubic))
    }
    assert after["ours"] >= after["bic"] - 1.0 and after["ours"] > after["acc"] + 5.0, after


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_temporal_model_does_not_drift_on_a_still_unjittered_shot(name, set5):
    """A video's still camera: every frame samples the scene alike, so there is nothing to gather, and the
    history must settle instead of changing itself frame after frame. The first training stage did not: x4
    fell from 1.5 to 3.5 dB below bicubic between frames 8 and 47 and kept falling; the accumulating x2 step
    settled blocky, about 6 dB under bicubic, until its display filters (a 3 x 3 neighbourhood of blocks for
    unjittered frames) interpolated the blocks. (Both still settle below bicubic: a known weakness on
    unjittered point-sampled frames, see the README.)"""
    from dataclasses import replace

    import cv2

    from upscaler.metrics import psnr

    model = get_model(name)
    s = model.scale
    spec = replace(SequenceSpec(s, (48, 40), 40, Camera(center=(128, 128))), jitter=((0.0, 0.0),))
    frames = make_sequence(set5["butterfly"], spec)
    ts = TemporalUpscaler(name, "onnxruntime-cpu")
    scores = [psnr(ts.upscale(f.lr, f.jitter, f.motion), f.hr, border=s) for f in frames]
    bicubic = psnr(cv2.resize(frames[0].lr, frames[0].hr.shape[1::-1], interpolation=cv2.INTER_CUBIC),
                   frames[0].hr, border=s)  # fmt: skip
    assert scores[-1] >= scores[12] - 0.25, scores  # settled: no drift over the last 28 frames
    assert min(scores) >= bicubic - 3.0, (scores, bicubic)


def test_fine_tuning_data_holds_still_and_unjittered_sequences_with_noisy_motion():

    from training.config import load_config
    from training.temporal import SequenceSet

    config = load_config(Path(__file__).parent.parent / "training/configs/x4-temporal-still.toml")
    assert config.model.init == "runs/x4-temporal/model.safetensors"  # the first stage's weights
    config.data.patch, config.data.frames, config.data.warmup_frames = 16, 3, 1
    images = [_scene(seed=i) for i in range(3)]
    items = [SequenceSet(images, config, 200)[i] for i in range(40)]
    unjittered = [b for b in items if not b["jitter"].abs().any()]
    assert 4 <= len(unjittered) <= 24  # data.unjittered = 0.3
    still = [b for b in items if b["jitter"].abs().any() and (b["motion"][1:2].abs() < 1e-4).float().mean() > 0.5]
    assert still  # jittered static shots: the background does not move (a sprite may)
    noisy = [b for b in unjittered if b["motion"][1:].abs().max() > 0]
    assert noisy and all(0 < b["motion"][1:].std() < 3.0 for b in noisy)  # data.motion_noise: smooth errors


def test_a_student_distils_from_the_teachers_step_from_the_students_own_state():
    """``model.teacher``: frozen, without display filters; the distillation term is the L1 to what the teacher
    makes of the same state and frame (nil when the student is the teacher), and a config must name both."""
    from types import SimpleNamespace

    from training.config import ConfigError, ModelConfig, OptimConfig, TrainConfig, validate_config
    from training.temporal import TemporalTrainer, load_teacher
    from upscaler.archs import build_network

    params = {k: v for k, v in get_model("x4-temporal-quality").params.items() if k != "display"}
    config = TrainConfig(name="s", model=ModelConfig("accum", 4, params, teacher="x4-temporal-quality"))
    torch.manual_seed(0)
    student = build_network("accum", 4, params)
    teacher = load_teacher(config, student)
    assert teacher.display_planes == 0 and not any(p.requires_grad for p in teacher.parameters())
    f = _pan(2)[1]
    lr = torch.from_numpy(f.lr.transpose(2, 0, 1)[None].copy()).float() / 255
    jitter, motion = torch.tensor([f.jitter], dtype=torch.float32), torch.zeros(1, 2, 16, 24)
    history, reset = teacher.start_state(lr), torch.zeros(1, 1)
    inputs = (lr, jitter, motion, history, reset, ())
    trainer = SimpleNamespace(teacher=teacher)
    with torch.no_grad():
        assert float(TemporalTrainer._distil(trainer, teacher(*inputs[:5]), *inputs)) == 0.0
        assert float(TemporalTrainer._distil(trainer, student(*inputs[:5]), *inputs)) > 1e-3
    with pytest.raises(ValueError, match="without display filters"):
        load_teacher(config, build_network("accum", 4, {**params, "display": 1}))
    with pytest.raises(ValueError, match="x2-temporal is accum x2"):
        load_teacher(TrainConfig(name="s", model=ModelConfig("accum", 4, params, teacher="x2-temporal")), student)
    config.data.train, config.data.degradation = ["x"], "sequence"
    with pytest.raises(ConfigError, match=r"distil_weight must be positive with model\.teacher"):
        validate_config(config)
    config.optim = OptimConfig(distil_weight=1.0)
    validate_config(config)


def test_a_stage_may_start_a_larger_accumulating_network_from_a_smaller_ones_weights():
    """``model.init`` of x4-temporal's weights for more hidden layers and history channels, and with the
    history range test (``clip``): the step is the one they computed; fewer history channels are refused, naming
    them."""
    from training.config import ModelConfig, TrainConfig
    from training.trainer import load_initial_weights
    from upscaler.archs import build_network

    params = dict(get_model("x4-temporal").params)
    grown = {**params, "blocks": 2, "history_channels": 16, "clip": True}
    net = build_network("accum", 4, grown)
    load_initial_weights(net, TrainConfig(name="g", model=ModelConfig("accum", 4, grown, init="x4-temporal")))
    before = build_network("accum", 4, params)
    load_initial_weights(before, TrainConfig(name="b", model=ModelConfig("accum", 4, params, init="x4-temporal")))
    f = _pan(2)[1]
    lr = torch.from_numpy(f.lr.transpose(2, 0, 1)[None].copy()).float() / 255
    inputs = (lr, torch.tensor([f.jitter]), torch.full((1, 2, 16, 24), 0.2), before.start_state(lr), torch.zeros(1, 1))
    with torch.no_grad():
        torch.testing.assert_close(net(*inputs), before(*inputs), rtol=0, atol=1e-6)
    fewer = {**params, "history_channels": 4}
    config = TrainConfig(name="f", model=ModelConfig("accum", 4, fewer, init="x4-temporal"))
    with pytest.raises(ValueError, match="history_channels 8"):
        load_initial_weights(build_network("accum", 4, fewer), config)


def test_early_steps_train_a_stream_from_its_start_and_the_rest_after_the_warm_up():
    from training.config import load_config
    from training.temporal import step_window

    config = load_config(Path(__file__).parent.parent / "training/configs/x2-accum-unjittered.toml")
    n, frames = config.data.warmup_frames + config.data.frames, config.data.frames
    batch = {"lr": torch.arange(2 * n).reshape(2, n), "reset": torch.zeros(2, n, 1)}
    windows = [step_window(config, step, batch) for step in range(200)]
    early = [(b, g) for b, g in windows if g == 0]
    assert 40 <= len(early) <= 80  # data.early = 0.3, drawn by step: the same on a resumed run
    assert all(b["lr"].shape == (2, frames) and b["lr"][0, 0] == 0 and b["reset"].shape[1] == frames for b, _ in early)
    assert all(b is batch and g == config.data.warmup_frames for b, g in windows if g != 0)
    assert [g for _, g in windows] == [g for _, g in (step_window(config, s, batch) for s in range(200))]
    config.data.early = 0.0
    assert all(step_window(config, s, batch) == (batch, config.data.warmup_frames) for s in range(50))


def test_models_lists_the_temporal_models_with_their_inputs():
    from tests.conftest import run_cli

    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    for name in SHIPPED:
        line = next(x for x in result.stdout.splitlines() if x.startswith(f"{name} (TemporalUpscaler) inputs:"))
        assert "jitter" in line and "motion" in line
    info = run_cli("info", "-m", "x4-temporal")
    assert "onnxruntime-cpu       available" in info.stdout and "torch-cpu             available" in info.stdout


def test_every_temporal_model_ships_both_graphs_intact_and_beats_its_baselines_measured_here(set5_dir):
    """The graphs are the ones the manifest names, the training config is there, and the model's quality is
    measured here (not read from the manifest): over rendered pans and a moving layer made from two Set5
    images it beats bicubic and plain accumulation of the same samples."""
    from upscaler.bench.rendered import release_quality
    from upscaler.models import list_models, sha256_file

    models = list_models("temporal")
    assert {m.name for m in models} == set(SHIPPED)
    for model in models:
        for f in (model.weights, model.onnx, model.graph("folded")):
            assert f.path.is_file() and sha256_file(f.path) == f.sha256 and f.path.stat().st_size < 5_000_000
        config = Path(__file__).parent.parent / model.training["config"]  # the last stage's; it names the others
        assert model.training["steps"] > 0 and config.is_file() and f"x{model.scale}-" in config.name
        q = release_quality(model, [set5_dir], size=(48, 32), frames=16, limit=2)["set5"]
        assert q["psnr"] > q["bicubic_psnr"] + 1.0 and q["psnr"] > q["accumulation_psnr"], (model.name, q)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_reprojection_in_half_precision_places_pixels_as_fp32_does_on_wide_frames(dtype):
    """Half precision has no integers above 2048: the sampling grid of a 4K-wide history stays in FP32."""
    dtype = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    history = torch.rand(1, 3, 8, 3072, generator=g).to(dtype)
    motion = ((torch.rand(1, 2, 2, 768, generator=g) - 0.5) * 6).to(dtype)  # values exact in both precisions
    want = reproject(history.float(), motion.float(), 4)
    got = reproject(history, motion, 4)
    assert got.dtype == dtype
    assert (got.float() - want).abs().max() < 0.01  # the output's own rounding, not a misplaced sample
