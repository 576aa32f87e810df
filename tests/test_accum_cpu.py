"""The accumulating models' CPU path (``runtime.accum_cpu`` and the ONNX Runtime engine's use of it): the fused
mean and the shown frame against the model's own PyTorch code, the display graphs it ships, and a stream where
still and moving pixels share a frame (both filters run)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.test_accum import _exported
from upscaler import TemporalUpscaler
from upscaler.archs import DISPLAY_FILTERS, LUMA
from upscaler.archs.accum import AccumSR
from upscaler.models import get_model
from upscaler.runtime import accum_cpu
from upscaler.sequences import Camera, Layer, SequenceSpec, make_sequence


def _net(scale=4, display=3, seed=5, detail=0) -> AccumSR:
    torch.manual_seed(seed)
    net = AccumSR(scale, channels=8, blocks=1, history_channels=4, display=display, detail=detail)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.eval()


def _identity_unjittered(net: AccumSR) -> AccumSR:
    """``net`` with its unjittered filter back to identity, as x4-temporal ships it."""
    net.show_as_is("unjittered")
    return net


#: (scale, AccumSR keywords, reset): every form of the per-sub-pixel weights ``runtime.accum_cpu`` reproduces
FORMS = [
    (2, {}, False),
    (4, {}, True),
    (4, {"settle": False, "keep_offset": 0.0}, False),
    (4, {"settle_base": True, "fresh_correction": True, "base_decay": 6.0}, False),  # the shipped models' form
    (2, {"settle_base": True, "fresh_correction": True, "base_decay": 6.0}, True),
    (4, {"settle_base": True, "fresh_correction": True, "base_decay": 6.0, "hold": 8.0}, False),  # held pixels
    (4, {"settle_base": True, "fresh_correction": True, "base_decay": 6.0, "hold": 8.0, "hold_correction": 0.0}, False),
    (2, {"settle": True, "hold": 8.0, "hold_correction": 0.25}, False),
]


@pytest.mark.parametrize(("scale", "form", "reset"), FORMS)
def test_the_fused_weights_mean_and_state_equal_the_models_own(scale, form, reset):
    """``combine`` (Numba: the weights from the network's tail, the mean, the unfolded state) against
    ``AccumSR.weigh`` and ``combine`` in PyTorch, with logits wide enough to saturate every sigmoid."""
    torch.manual_seed(3)
    net, s2 = AccumSR(scale, channels=8, blocks=1, history_channels=4, **form).eval(), scale * scale
    h, w = 7, 9
    frame, colour = torch.rand(1, 3, h, w), torch.rand(1, 3 * s2, h, w)
    weight, depth = torch.rand(1, s2, h, w) - 0.1, torch.rand(1, 1, h, w) + 0.5  # bicubic overshoots below 0
    jitter, flag = torch.tensor([[0.3, -0.15]]), torch.tensor([[float(reset)]])
    tail = torch.randn(1, 6 * s2, h, w) * 8
    hold = (torch.rand(1, 1, h, w) > 0.5).float() if form.get("hold") else None
    with torch.no_grad():
        gain = net.splat_gain(jitter)
        *weights, gathered = net.weigh(tail, weight, flag, gain, hold)
        expected = net.combine(frame, jitter, colour, *weights)
        kernels = net.mix_kernels(jitter)
    outputs = [tail[0].numpy(), gain[0].numpy(), kernels[0].numpy()]
    folded = torch.cat([colour, weight, torch.rand(1, s2, h, w)], dim=1)[0].numpy()
    result = np.empty((3 * s2, h, w), np.float32)
    state = (np.empty((h * scale, w * scale, 4), np.float32), np.empty((h * scale, w * scale), np.float32))
    weighing = accum_cpu.constants(net.inference_params())
    accum_cpu.combine(frame[0].numpy(), folded, outputs, weighing, reset, scale, depth[0, 0].numpy(), state, result,
                      np.empty((s2, h, w), np.float32), 2, None if hold is None else hold[0, 0].numpy())  # fmt: skip
    assert np.abs(result - expected[0].numpy()).max() < 1e-5
    unfolded = F.pixel_shuffle(torch.cat([expected, gathered, depth.expand(1, s2, h, w)], dim=1), scale)[0].numpy()
    assert np.abs(state[0] - unfolded[:4].transpose(1, 2, 0)).max() < 1e-5  # colour and weight, interleaved
    assert np.abs(state[1] - unfolded[4]).max() < 1e-5  # depth, high resolution
    before = state[1].copy()
    accum_cpu.combine(frame[0].numpy(), folded, outputs, weighing, reset, scale, None, state, result,
                      np.empty((s2, h, w), np.float32), 2, None if hold is None else hold[0, 0].numpy())  # fmt: skip
    assert np.array_equal(state[1], before) and np.abs(state[0] - unfolded[:4].transpose(1, 2, 0)).max() < 1e-5


def test_the_depth_gap_in_place_equals_the_models():
    h, w, s2 = 5, 7, 16
    depth, previous = torch.rand(1, 1, h, w) * 4, torch.rand(1, s2, h, w) * 4
    previous[0, :, 0] = 0.0  # the history had no depth there
    depth[0, 0, 1] = 0.0  # this frame has none there
    expected = AccumSR.depth_gap(depth, previous)[0].numpy()
    gap = previous[0].numpy().copy()
    accum_cpu.depth_gap(depth[0, 0].numpy(), gap, 2)
    assert np.abs(gap - expected).max() < 1e-6


def test_the_kernels_exponential_sigmoid_and_softplus_match_numpys():
    """The arithmetic forms LLVM vectorises, over the whole range a logit takes (and past it)."""
    x = np.concatenate([np.linspace(-120, 120, 20001), [0.0, -0.0, 1e-8, -1e-8]]).astype(np.float32)
    exp = np.array([accum_cpu._exp_neg(np.float32(v)) for v in -np.abs(x)])
    wide = np.exp(-np.abs(x).astype(np.float64))
    near = np.abs(x) < 4  # beyond, float32's rounding of x / ln 2 dominates: a few ulps of x
    assert np.all(np.abs(exp - wide)[near] <= 3e-7 * wide[near]) and np.all(np.abs(exp - wide) <= 3e-6 * wide + 1e-18)
    sigmoid = np.array([accum_cpu._sigmoid(v) for v in x])
    assert np.abs(sigmoid - 1 / (1 + np.exp(-x.astype(np.float64)))).max() < 3e-7
    softplus = np.array([accum_cpu._softplus(v) for v in x])
    expected = np.logaddexp(0.0, x.astype(np.float64))
    assert np.all(np.abs(softplus - expected) <= 4e-7 * np.maximum(expected, 1.0))


def test_show_takes_each_pixels_filter_by_its_motion_and_clamps():
    s, h, w = 2, 5, 6
    moving, still = np.full((3 * s * s, h, w), 1.5, np.float32), np.full((3 * s * s, h, w), 0.25, np.float32)
    motion = np.zeros((2, h, w), np.float32)
    motion[1, 2:, 3:] = -0.5
    out = np.empty((3, h * s, w * s), np.float32)
    for pick, expected in [(0, 1.0), (1, 0.25)]:
        accum_cpu.show(moving, still, motion, pick, s, out, 1)
        assert np.all(out == expected)
    accum_cpu.show(moving, still, motion, 2, s, out, 1)
    moved = np.kron((motion != 0).any(axis=0), np.ones((s, s))).astype(bool)
    assert np.all(out[:, moved] == 1.0) and np.all(out[:, ~moved] == 0.25)


def test_1x1_filters_in_the_show_pass_are_their_matrices_picked_by_motion_and_clamped():
    """``show_filtered`` (1x1 display filters applied as the shown frame is unfolded) against NumPy's products,
    for every ``pick``, as floats and as 8 bits (what ``show`` gives from the filtered planes)."""
    s, h, w = 4, 3, 5
    rng = np.random.default_rng(6)
    result = rng.random((3 * s * s, h, w), np.float32)
    matrices = rng.normal(0, 0.4, (2, s * s, s * s)).astype(np.float32)
    biases = rng.normal(0, 0.3, (2, s * s)).astype(np.float32)
    motion = np.zeros((2, h, w), np.float32)
    motion[0, 1:, 2:] = 0.25
    motion[1, 2, :] = -0.5  # rows all still (0), mixed (1) and all moving (2)
    filtered = [np.einsum("qk,ckhw->cqhw", m, result.reshape(3, s * s, h, w)).reshape(3 * s * s, h, w)
                + np.tile(b, 3)[:, None, None] for m, b in zip(matrices, biases)]  # fmt: skip
    assert (np.concatenate(filtered) < 0).any() and (np.concatenate(filtered) > 1).any()  # the clamp is tested
    for pick in (0, 1, 2):
        for out in (np.empty((3, h * s, w * s), np.float32), np.empty((h * s, w * s, 3), np.uint8)):
            expected = np.empty_like(out)
            accum_cpu.show(*filtered, motion, pick, s, expected, 1)
            accum_cpu.show_filtered(result, matrices, biases, motion, pick, s, out, 1)
            if out.dtype == np.uint8:
                assert np.abs(out.astype(int) - expected).max() <= 1 and (out == expected).mean() > 0.99
            else:
                assert np.abs(out - expected).max() < 1e-5


def test_luma_details_in_the_show_pass_are_added_to_every_colour_of_their_filter_only():
    """``show_filtered`` with ``details``: each filter's luma detail (where its bit is set) added to all three
    colours before the clamp; ``luma`` is the folded colour's ``LUMA``."""
    s, h, w = 4, 3, 5
    rng = np.random.default_rng(8)
    result = rng.random((3 * s * s, h, w), np.float32)
    luma, padded = np.empty((s * s, h, w), np.float32), np.empty((s * s, h + 2, w + 2), np.float32)
    accum_cpu.luma(result, luma, 1)
    assert np.allclose(luma, np.einsum("c,cqhw->qhw", np.array(LUMA), result.reshape(3, s * s, h, w)), atol=1e-6)
    accum_cpu.luma(result, padded, 1)  # what the detail graphs read: the edges replicated
    assert np.array_equal(padded, np.pad(luma, ((0, 0), (1, 1), (1, 1)), mode="edge"))
    eye, zeros = np.stack([np.eye(s * s, dtype=np.float32)] * 2), np.zeros((2, s * s), np.float32)
    matrices = eye * np.float32(0.9)
    biases = rng.normal(0, 0.05, (2, s * s)).astype(np.float32)
    details = rng.normal(0, 0.5, (2, s * s, h, w)).astype(np.float32)
    motion = np.zeros((2, h, w), np.float32)
    motion[0, 1:, 2:] = 0.25
    motion[1, 2, :] = -0.5
    ends = set()
    for detailed in (1, 2, 3):
        filtered = [
            np.einsum("qk,ckhw->cqhw", m, result.reshape(3, s * s, h, w))
            + b[:, None, None]
            + d[None] * (detailed >> k & 1)
            for k, (m, b, d) in enumerate(zip(matrices, biases, details))
        ]
        for pick in (0, 1, 2):
            expected, out = (np.empty((3, h * s, w * s), np.float32) for _ in range(2))
            accum_cpu.show(*(f.reshape(3 * s * s, h, w) for f in filtered), motion, pick, s, expected, 1)
            accum_cpu.show_filtered(result, matrices, biases, motion, pick, s, out, 1, details, detailed)
            assert np.abs(out - expected).max() < 1e-5
            accum_cpu.show_filtered(result, eye, zeros, motion, pick, s, out, 1, details, detailed)
            for shown in (np.empty_like(out), np.empty((h * s, w * s, 3), np.uint8)):  # no 1x1 filter: the plain pass
                accum_cpu.show(result, result, motion, pick, s, shown, 1, details, detailed)
                exact = out if shown.dtype != np.uint8 else np.rint(out * 255).transpose(1, 2, 0)
                assert np.abs(shown.astype(np.float32) - exact).max() <= (1 if shown.dtype == np.uint8 else 1e-5)
            ends |= {float(v) for v in expected[(expected == 0) | (expected == 1)]}
    assert ends == {0.0, 1.0}  # the clamp is tested


def test_kernel_threads_stay_within_what_numba_has():
    most = accum_cpu.kernel_threads(None)
    assert most >= 1 and accum_cpu.kernel_threads(1) == 1 and accum_cpu.kernel_threads(10_000) == most


def test_only_filters_that_are_not_identity_ship_a_graph(tmp_path):
    net = _identity_unjittered(_net())
    assert list(net.display_filters()) == ["moving", "still"]
    model = get_model(_exported(net, tmp_path / "two-filters.safetensors"))
    assert sorted(model.graphs) == ["display-moving", "display-still", "folded"]
    assert not (tmp_path / "two-filters.display-unjittered.onnx").exists()
    detailed = _identity_unjittered(_net(display=1, detail=3))
    model = get_model(_exported(detailed, tmp_path / "detailed.safetensors"))
    assert sorted(model.graphs) == ["detail-moving", "detail-still", "display-moving", "display-still", "folded"]
    assert DISPLAY_FILTERS == ("moving", "still", "unjittered")


@pytest.mark.parametrize(("taps", "detail", "as_is"), [(3, 0, False), (1, 0, False), (1, 3, False), (1, 3, True)])
def test_a_still_camera_over_a_moving_layer_shows_both_filters_as_pytorch_does(tmp_path, taps, detail, as_is):
    """Still background and a moving layer in one frame: the CPU engine runs both filters and picks per pixel
    (3x3 display graphs and luma details: the moving one's graph over the layer's rows only)."""
    from export.temporal import check_temporal_parity

    net = _net(display=taps, detail=detail)
    if as_is:  # no colour filter: the details are added in the plain show pass
        with torch.no_grad():
            net.display.weight.copy_(net._identity().repeat(3, 1, 1, 1))
            net.display.bias.zero_()
    path = _exported(net, tmp_path / "mixed.safetensors")
    rng = np.random.default_rng(1)
    scene, texture = (rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(2))
    layer = Layer(texture.astype(np.float32) / 255, origin=(20.0, 12.0), size=(40.0, 30.0), velocity=(3.0, 1.0))
    frames = make_sequence(scene, SequenceSpec(4, (24, 16), 6, Camera(center=(64, 48), velocity=(0, 0)), layer=layer))
    still = [(np.abs(f.motion).max(axis=2) == 0).mean() for f in frames[1:]]
    assert all(0.2 < share < 0.95 for share in still)  # every frame has both kinds of pixel
    assert all((np.abs(f.motion).max(axis=2) == 0).all(axis=1).any() for f in frames[1:])  # rows of one kind
    model = get_model(path)
    report = check_temporal_parity(model, path.with_suffix(".onnx"), path.with_suffix(".folded.onnx"), frames)
    assert report.folded < 2e-3
    a, b = TemporalUpscaler(path, "onnxruntime-cpu"), TemporalUpscaler(path, "torch-cpu")
    for f in frames:
        x, y = a.upscale(f.lr, f.jitter, f.motion, f.depth), b.upscale(f.lr, f.jitter, f.motion, f.depth)
        assert np.abs(x.astype(int) - y).max() <= 1


def test_a_batch_makes_the_coefficients_each_frame_makes_alone():
    """Training runs batches (each frame its own upsample); exported graphs one frame (the upsample's projection
    folded into one convolution of the frame): the same numbers."""
    net, s2 = _net(4, display=0), 16
    h, w = 6, 8
    frame, jitter, reset = (
        torch.rand(2, 3, h, w),
        torch.tensor([[0.3, -0.15], [-0.4, 0.2]]),
        torch.tensor([[0.0], [1.0]]),
    )
    planes = (torch.rand(2, 3 * s2, h, w), torch.rand(2, s2, h, w), torch.rand(2, s2, h, w))
    args = (frame, jitter, *planes, reset, torch.rand(2, 1, h, w))
    with torch.no_grad():
        batch = net.coefficients(*args)
        for i in range(2):
            alone = net.coefficients(*(a[i : i + 1] for a in args))
            assert all(torch.allclose(b[i : i + 1], a, atol=1e-5) for b, a in zip(batch, alone))


@pytest.mark.parametrize(("identity_unjittered", "taps"), [(False, 3), (True, 3), (True, 1)])
def test_8_bit_steps_equal_the_float_steps_converted(tmp_path, identity_unjittered, taps):
    """``step_rgb8`` (the shown frame written as 8 bits in the pass that unfolds it) gives what ``step`` and
    ``TemporalUpscaler``'s conversion give, through every gate, with a filter shipped as identity or not."""
    from upscaler.runtime.select import create_engine
    from upscaler.runtime.stream import rgb8_inputs, rgb8_output

    net = _identity_unjittered(_net(display=taps)) if identity_unjittered else _net(display=taps)
    floats = create_engine(get_model(_exported(net, tmp_path / "eights.safetensors")), "onnxruntime-cpu")
    eights = floats.fork()
    rng = np.random.default_rng(4)
    scene, texture = (rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(2))
    layer = Layer(texture.astype(np.float32) / 255, origin=(20.0, 12.0), size=(40.0, 30.0), velocity=(3.0, 1.0))
    frames = make_sequence(scene, SequenceSpec(4, (24, 16), 7, Camera(center=(64, 48), velocity=(0, 0)), layer=layer))
    for t, f in enumerate(frames):
        jitter = (0.0, 0.0) if t in (3, 4) else f.jitter  # unjittered frames: that filter, or none
        expected = rgb8_output(floats.step(*rgb8_inputs(f.lr, jitter, f.motion), reset=t == 0)[0])
        got = eights.step_rgb8(f.lr, jitter, f.motion, reset=t == 0)
        assert got.dtype == np.uint8 and got.shape == (64, 96, 3) and np.array_equal(got, expected)


def test_a_cpu_graph_from_an_older_export_is_refused_by_name(tmp_path):
    """A folded graph with the outputs of an earlier export (the weights themselves, not the tail) cannot be
    read by this engine's fused pass: refused with what to do, not run into a wrong picture."""
    from upscaler.runtime.base import EngineUnavailable
    from upscaler.runtime.temporal_ort_cpu import OrtCpuTemporalEngine

    path = _exported(_net(display=0), tmp_path / "older.safetensors")

    class Older(torch.nn.Module):
        def forward(self, frame, colour):
            return colour[:, :16] * 0.5, frame * 2.0

    args, folded = (torch.rand(1, 3, 4, 5), torch.rand(1, 48, 4, 5)), str(path.with_suffix(".folded.onnx"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation, as export.temporal's
        torch.onnx.export(Older(), args, folded, dynamo=False, input_names=["frame", "colour"],
                          output_names=["history_weight", "splat_weight"])  # fmt: skip
    with pytest.raises(EngineUnavailable, match=r"older export .*history_weight, splat_weight.*export_temporal"):
        OrtCpuTemporalEngine(get_model(path))


def test_a_held_pixel_keeps_only_hold_correction_of_the_correction():
    torch.manual_seed(5)
    form = {"settle_base": True, "fresh_correction": True, "base_decay": 6.0, "hold": 8.0}
    kept, dropped = (AccumSR(4, channels=8, blocks=1, history_channels=4, **form, hold_correction=c) for c in (1, 0))
    tail, weight = torch.randn(1, 96, 5, 6) * 4, torch.rand(1, 16, 5, 6)
    hold = torch.zeros(1, 1, 5, 6)
    hold[..., :3] = 1.0
    gain, flag = kept.splat_gain(torch.tensor([[0.2, 0.1]])), torch.zeros(1, 1)
    with torch.no_grad():
        full, none = (net.weigh(tail, weight, flag, gain, hold)[3] for net in (kept, dropped))
    assert torch.all(none[..., :3] == 0) and torch.all(full[..., :3] > 0)  # held: none of the correction
    assert torch.equal(none[..., 3:], full[..., 3:])  # not held: as trained
    with pytest.raises(ValueError, match="hold_correction"):
        AccumSR(4, hold=8.0, hold_correction=1.5)
