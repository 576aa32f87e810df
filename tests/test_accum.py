"""The accumulating temporal step (``archs.accum``): its jitter-aware splat, that it converges on a still
shot as a plain accumulation does, the state it carries through every engine and graph, and depth."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from upscaler import TemporalUpscaler
from upscaler.archs import LUMA
from upscaler.archs.accum import AccumSR, _mix, _outside, _softplus, jitter_coefficients, lagrange_coefficients
from upscaler.models import get_model
from upscaler.sequences import Camera, Layer, SequenceSpec, make_sequence


def _exported(net: AccumSR, path):
    """``net`` saved as ``path`` (a ``.safetensors`` with upscaler metadata) with both graphs beside it."""
    from export.temporal import export_temporal

    meta = {"name": path.stem, "arch": "accum", "scale": str(net.scale), "degradation": "sequence",
            "training": "{}", "params": json.dumps(net.inference_params())}  # fmt: skip
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    export_temporal(get_model(path), path.with_suffix(".onnx"), path.with_suffix(".folded.onnx"))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small random AccumSR with both graphs exported: tests the machinery, not the quality."""
    torch.manual_seed(0)
    net = AccumSR(4, channels=8, blocks=1, history_channels=4)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return _exported(net, tmp_path_factory.mktemp("accum") / "tiny-accum.safetensors")


def _layered(frames=6, size=(24, 16), scale=4):
    rng = np.random.default_rng(0)
    scene, texture = (rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(2))
    layer = Layer(texture.astype(np.float32) / 255, origin=(20.0, 12.0), size=(40.0, 30.0), velocity=(5.0, 2.0))
    spec = SequenceSpec(scale, size, frames, Camera(center=(64, 48), velocity=(1.3, -0.6)), layer=layer)
    return make_sequence(scene, spec)


def test_the_splat_weights_follow_the_jitter_and_the_bilinear_weights_sum_to_one():
    jitter = torch.tensor([[-0.375, 0.125], [0.25, -0.5]])
    bilinear, gaussian = jitter_coefficients(jitter, 4, 0.5)
    assert bilinear.shape == gaussian.shape == (2, 16, 9)
    assert torch.allclose(bilinear.sum(dim=2), torch.ones(2, 16), atol=1e-6)
    # frame 0 sampled at (0.125, 0.625) LR px of its block: sub-pixel column 0, row 2 holds it (centre (0.125, 0.625))
    assert int(gaussian[0, :, 4].argmax()) == 2 * 4 + 0 and float(gaussian[0, 8, 4]) == pytest.approx(1.0)


def test_the_lagrange_splat_interpolates_the_samples_where_the_gaussian_one_makes_blocks():
    jitter = torch.tensor([[-0.375, 0.125], [0.0, 0.0]])
    weights = lagrange_coefficients(jitter, 4)
    assert weights.shape == (2, 16, 9) and torch.allclose(weights.sum(dim=2), torch.ones(2, 16), atol=1e-6)
    assert float(weights[0, 8, 4]) == pytest.approx(1.0) and float(weights[0, 8].abs().sum()) == pytest.approx(1.0)
    # a ramp is reproduced exactly (quadratic interpolation is exact for it); the Gaussian mean gives x2 blocks
    x = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 3, 6, 8).contiguous()
    s2 = 4
    lagrange = _mix(x, lagrange_coefficients(torch.zeros(1, 2), 2), s2)[0, :s2, 2, 3]  # one pixel's 4 sub-pixels
    _, gaussian = jitter_coefficients(torch.zeros(1, 2), 2, 0.5)
    blocks = _mix(x, gaussian / gaussian.sum(dim=2, keepdim=True), s2)[0, :s2, 2, 3]
    torch.testing.assert_close(lagrange, torch.tensor([2.75, 3.25, 2.75, 3.25]))  # sub-pixels at 3 -/+ 0.25
    assert float(blocks.max() - blocks.min()) < 0.1  # all four near the sample's 3: a 2x2 block
    with pytest.raises(ValueError, match="splat"):
        AccumSR(2, splat="nearest")


def test_the_exported_softplus_is_torch_softplus_in_value_and_gradient():
    x = torch.tensor([-60.0, -20.0, -3.0, -0.5, -1e-4, 1e-4, 0.7, 4.0, 19.0, 21.0, 80.0], requires_grad=True)
    ours, reference = _softplus(x), torch.nn.functional.softplus(x)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-7)
    (grad,) = torch.autograd.grad(ours.sum(), x)
    torch.testing.assert_close(grad, torch.sigmoid(x.detach()), rtol=1e-5, atol=1e-6)


def test_the_graphs_have_no_softplus_node_and_the_cpu_graph_no_weighing(tiny):
    """The whole step writes softplus as ``_softplus``; the CPU graph stops at the network's tail (its fused pass
    weighs the sub-pixels: ``runtime.accum_cpu``)."""
    import onnx

    whole, folded = ({node.op_type for node in onnx.load(str(tiny.with_suffix(s))).graph.node}
                     for s in (".onnx", ".folded.onnx"))  # fmt: skip
    assert "Softplus" not in whole and {"Exp", "Log", "Sigmoid"} <= whole
    assert not {"Softplus", "Log", "Sigmoid"} & folded and "Conv" in folded  # (Exp: the splat's per-frame weights)


def test_a_still_shot_gathers_its_samples_as_a_plain_accumulation_does():
    """Untrained (keep the history, trust every sample, lean on the upsample a little) the step is a plain
    accumulation: on a still jittered shot its error falls frame after frame toward the samples' average."""
    torch.manual_seed(0)
    net = AccumSR(4).eval()
    rng = np.random.default_rng(1)
    scene = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    frames = make_sequence(scene, SequenceSpec(4, (24, 16), 16, Camera(center=(64, 48))))
    state, errors = None, []
    with torch.no_grad():
        for t, f in enumerate(frames):
            x = torch.from_numpy(f.lr.transpose(2, 0, 1)[None].copy()).float() / 255
            j = torch.tensor([f.jitter], dtype=torch.float32)
            state = net(x, j, torch.zeros(1, 2, 16, 24), net.start_state(x) if state is None else state,
                        torch.tensor([[1.0 if t == 0 else 0.0]]))  # fmt: skip
            errors.append(float((state[0, :3].permute(1, 2, 0).numpy() * 255 - f.hr).__abs__().mean()))
    assert errors[-1] < 0.75 * errors[0] and float(state[0, 3].mean()) > 0  # it counted what it gathered


def test_every_engine_and_graph_carries_the_same_state(tiny):
    from export.temporal import check_temporal_parity

    model = get_model(tiny)
    assert (model.state_channels, model.depth, model.reproject) == (5, True, "cubic")
    report = check_temporal_parity(model, tiny.with_suffix(".onnx"), tiny.with_suffix(".folded.onnx"), _layered())
    assert report.full < 1e-4 and report.folded < 2e-3  # the CPU engine reprojects with OpenCV's cubic
    a, b = TemporalUpscaler(tiny, "onnxruntime-cpu"), TemporalUpscaler(tiny, "torch-cpu")
    for f in _layered():
        x, y = a.upscale(f.lr, f.jitter, f.motion, f.depth), b.upscale(f.lr, f.jitter, f.motion, f.depth)
        assert x.shape == (64, 96, 3) and np.abs(x.astype(int) - y).max() <= 1


@pytest.mark.parametrize("name", ["x4-temporal", "x4-temporal-quality", "x2-temporal"])
def test_the_shipped_graphs_match_pytorch_over_a_layered_sequence(name):
    from export.temporal import check_temporal_parity

    model = get_model(name)
    frames = _layered(5, scale=model.scale)
    report = check_temporal_parity(model, model.onnx.verified(), model.graph("folded").verified(), frames)
    assert report.full < 1e-4 and report.folded < 2e-3


@pytest.mark.parametrize("scale, option", [(2, {"splat": "lagrange"}), (4, {"clip": True})])
def test_a_model_with_an_option_exports_and_every_graph_agrees(tmp_path, scale, option):
    from export.temporal import check_temporal_parity

    torch.manual_seed(1)
    net = AccumSR(scale, channels=8, blocks=1, history_channels=4, **option)
    with torch.no_grad():  # the clip planes read with weights that are not zero
        net.history_proj.weight.normal_(0, 0.3)
    path = _exported(net, tmp_path / "tiny-option.safetensors")
    model = get_model(path)
    assert {k: model.params[k] for k in option} == option
    frames = _layered(4, scale=scale)
    report = check_temporal_parity(model, path.with_suffix(".onnx"), path.with_suffix(".folded.onnx"), frames)
    assert report.full < 1e-4 and report.folded < 2e-3


def test_depth_reaches_the_network_and_a_stream_without_it_is_unchanged_by_zeros(tiny):
    frames = _layered()
    plain, told, zeros = (TemporalUpscaler(tiny, "onnxruntime-cpu") for _ in range(3))
    outs = {"plain": [], "told": [], "zeros": []}
    for f in frames:
        outs["plain"].append(plain.upscale(f.lr, f.jitter, f.motion))
        outs["told"].append(told.upscale(f.lr, f.jitter, f.motion, f.depth))
        outs["zeros"].append(zeros.upscale(f.lr, f.jitter, f.motion, np.zeros_like(f.depth)))
    assert all(np.array_equal(p, z) for p, z in zip(outs["plain"], outs["zeros"]))  # zeros mean "no depth"
    assert any(not np.array_equal(p, t) for p, t in zip(outs["plain"], outs["told"]))  # depth changes the step
    with pytest.raises(ValueError, match="depth must be finite and not negative"):
        plain.upscale(frames[0].lr, frames[0].jitter, frames[0].motion, np.full(frames[0].depth.shape, -1.0, "f4"))


def test_the_sequences_hand_over_depth_and_what_the_layer_uncovered():
    frames = _layered()
    assert all(f.depth.shape == (16, 24) and set(np.unique(f.depth)) <= {2.0, 10.0} for f in frames)
    assert any((f.depth == 2.0).any() for f in frames)  # the layer is nearer
    assert not frames[0].disoccluded.any() and any(f.disoccluded.any() for f in frames[1:])
    assert all(not (f.disoccluded & ~f.dynamic).any() for f in frames)  # what it uncovered, it covered before


def _display_net(scale: int = 4, seed: int = 2, taps: int = 3, detail: int = 0, as_is: bool = False) -> AccumSR:
    """A small random AccumSR with random shown-colour filters (and luma detail filters; ``as_is``: the colour
    filters identity, the detail ones random)."""
    torch.manual_seed(seed)
    net = AccumSR(scale, channels=8, blocks=1, history_channels=4, display=taps, detail=detail)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        if as_is:
            net.display.weight.copy_(net._identity().repeat(3, 1, 1, 1))
            net.display.bias.zero_()
    return net


def _with_rest_and_no_jitter(frames):
    """``frames`` with a still stretch (zero motion) and an unjittered one: every display filter is chosen."""
    from dataclasses import replace

    still = [replace(f, motion=np.zeros_like(f.motion)) for f in frames[1:3]]
    centred = [replace(f, jitter=(0.0, 0.0)) for f in frames[3:5]]
    return [frames[0], *still, *centred, *frames[5:]]


@pytest.mark.parametrize(("taps", "detail", "as_is"), [(3, 0, False), (1, 0, False), (1, 3, False), (1, 3, True)])
def test_a_display_model_shows_a_filtered_state_and_every_engine_and_graph_agrees(tmp_path, taps, detail, as_is):
    """1x1 filters are applied in the CPU engine's show pass; luma details added there (``as_is``: with no 1x1
    filter to apply, in the plain show pass)."""
    from export.temporal import check_temporal_parity

    path = _exported(_display_net(taps=taps, detail=detail, as_is=as_is), tmp_path / "tiny-display.safetensors")
    model = get_model(path)
    assert (model.state_channels, model.display_planes) == (8, 3)
    assert sum(kind.startswith("detail-") for kind in model.graphs) == (3 if detail else 0)
    assert sum(kind.startswith("display-") for kind in model.graphs) == (0 if as_is else 3)
    frames = _with_rest_and_no_jitter(_layered(8))
    report = check_temporal_parity(model, path.with_suffix(".onnx"), path.with_suffix(".folded.onnx"), frames)
    assert report.full < 1e-4 and report.folded < 2e-3
    a, b = TemporalUpscaler(path, "onnxruntime-cpu"), TemporalUpscaler(path, "torch-cpu")
    for f in frames:
        x, y = a.upscale(f.lr, f.jitter, f.motion, f.depth), b.upscale(f.lr, f.jitter, f.motion, f.depth)
        assert x.shape == (64, 96, 3) and np.abs(x.astype(int) - y).max() <= 1
    history = b.engine._history[0]
    assert not torch.equal(history[:3], history[3:6])  # shown and kept colour differ: the filter is not fed back


@pytest.mark.parametrize(("taps", "detail"), [(1, 0), (3, 0), (1, 3)])
def test_display_filters_start_as_identity_and_weights_without_them_load_unchanged(taps, detail):
    torch.manual_seed(3)
    plain = AccumSR(4, channels=8, blocks=1, history_channels=4)
    shown = AccumSR(4, channels=8, blocks=1, history_channels=4, display=taps, detail=detail)
    shown.load_plain_state_dict(plain.state_dict())
    x, d = torch.rand(1, 3, 8, 12), torch.rand(1, 1, 8, 12) + 1
    motion, reset = torch.zeros(1, 2, 8, 12), torch.ones(1, 1)
    ours = shown(x, torch.tensor([[0.1, -0.2]]), motion, shown.start_state(x), reset, d)
    theirs = plain(x, torch.tensor([[0.1, -0.2]]), motion, plain.start_state(x), reset, d)
    assert torch.allclose(ours[:, :3], theirs[:, :3], atol=1e-6) and torch.equal(ours[:, 3:], theirs)


def test_luma_detail_filters_show_the_luma_a_3x3_filter_of_every_colour_shows_and_the_1x1_filters_chroma():
    """``detail``: a 1x1 filter over every colour plus a 3x3 one over the luma (``LUMA``) shows the luma of the
    3x3 filter that is their sum, and the chroma (colour minus luma) of the 1x1 filter alone."""
    torch.manual_seed(7)
    dense = AccumSR(2, channels=8, blocks=1, history_channels=4, display=3)
    split = AccumSR(2, channels=8, blocks=1, history_channels=4, display=1, detail=3)
    own = AccumSR(2, channels=8, blocks=1, history_channels=4, display=1)
    with torch.no_grad():  # near identity, so nothing reaches the clamp
        split.display.weight.add_(torch.randn_like(split.display.weight) * 0.03)
        split.display.bias.normal_(0, 0.02)
        split.detail.weight.normal_(0, 0.01)
        split.detail.bias.normal_(0, 0.02)
        own.display.load_state_dict(split.display.state_dict())
        dense.display.weight.copy_(split.detail.weight)
        dense.display.weight[:, :, 1, 1] += split.display.weight[:, :, 0, 0]
        dense.display.bias.copy_(split.detail.bias + split.display.bias)
    result = torch.rand(1, 3, 4, 5, 6) * 0.4 + 0.3  # away from the clamp
    luma = torch.tensor(LUMA).reshape(1, 3, 1, 1, 1)
    for jitter, still in [((0.25, 0.0), 0.0), ((0.25, 0.0), 1.0), ((0.0, 0.0), 0.0)]:
        args = (torch.tensor([jitter]), torch.full((1, 2, 5, 6), 1.0 - still), torch.zeros(1, 1))
        ours, theirs, alone = (net._display(result, *args).reshape(1, 3, 4, 5, 6) for net in (split, dense, own))
        assert ours.min() > 0 and ours.max() < 1  # no clamp: linear throughout
        torch.testing.assert_close((ours * luma).sum(1), (theirs * luma).sum(1), rtol=0, atol=1e-5)
        chroma = ours - (ours * luma).sum(1, keepdim=True)
        torch.testing.assert_close(chroma, alone - (alone * luma).sum(1, keepdim=True), rtol=0, atol=1e-5)
    assert sum(LUMA) == pytest.approx(1.0)
    split.show_as_is("still")
    assert list(split.detail_filters()) == ["moving", "unjittered"]
    with pytest.raises(ValueError, match="detail"):
        AccumSR(2, display=3, detail=3)


def test_a_network_with_more_layers_and_history_channels_starts_as_the_smaller_one_and_learns():
    """``load_plain_state_dict`` of a smaller network's weights: an identity hidden layer and history channels
    the head reads with zero weights compute the same step, and the new channels get gradients."""
    torch.manual_seed(4)
    small = AccumSR(4, channels=8, blocks=1, history_channels=4)
    for p in small.parameters():
        p.data.normal_(0, 0.1)
    grown = AccumSR(4, channels=8, blocks=2, history_channels=6, clip=True)
    grown.load_plain_state_dict(small.state_dict())
    x, d = torch.rand(2, 3, 8, 12), torch.rand(2, 1, 8, 12) + 1
    jitter, motion, reset = torch.rand(2, 2) - 0.5, torch.randn(2, 2, 8, 12) * 0.3, torch.zeros(2, 1)
    history = torch.rand(2, 5, 32, 48)
    torch.testing.assert_close(grown(x, jitter, motion, history, reset, d), small(x, jitter, motion, history, reset, d),
                               rtol=0, atol=1e-6)  # fmt: skip
    grown(x, jitter, motion, history, reset, d)[:, :3].mean().backward()
    assert grown.head.weight.grad[:, 6 + 4 :].abs().sum() > 0  # the head starts reading the new channels
    assert grown.history_proj.weight[4:].abs().sum() > 0  # ... which carry something
    assert grown.history_proj.weight.grad[:, 5 * 16 :].abs().sum() > 0  # and the range test is learnt from zero
    with pytest.raises(RuntimeError):  # fewer channels are not a smaller network of this one
        AccumSR(4, channels=6, blocks=2, history_channels=6).load_plain_state_dict(small.state_dict())


def test_the_range_test_is_how_far_the_history_lies_outside_the_frames_samples_around_it():
    """``_outside``: zero where a sub-pixel's history (luma) lies between the least and the most of the 3 x 3
    samples around its block, the distance to the nearer bound outside; edges see the samples they have."""
    frame = torch.full((1, 3, 3, 3), 0.5)
    frame[0, :, 0, 0] = 0.2  # one dark sample in the corner: in the range of the four blocks around it only
    colour = torch.full((1, 3 * 4, 3, 3), 0.3)  # x2: four sub-pixels a block, all 0.3 (a grey: luma 0.3)
    colour[0, [1, 5, 9], 2, 2] = 0.9  # one sub-pixel of the far corner's block bright
    out = _outside(colour, frame, 4)
    assert out.shape == (1, 4, 3, 3)
    inside = torch.zeros(3, 3, dtype=torch.bool)
    inside[:2, :2] = True  # the dark sample is a neighbour of these blocks: 0.3 lies in [0.2, 0.5]
    torch.testing.assert_close(out[0, 0], torch.where(inside, 0.0, 0.2))  # elsewhere 0.2 under the range
    assert out[0, 1, 2, 2].item() == pytest.approx(0.4)  # 0.9 lies 0.4 over the range's top (0.5)


def test_the_display_gates_pick_unjittered_then_still_then_moving_filter_as_the_fit_does():
    from training.display import FILTERS, filter_of

    net = AccumSR(2, channels=8, blocks=1, history_channels=4, display=1)
    with torch.no_grad():  # each filter shows a constant: its index / 4
        net.display.weight.zero_()
        net.display.bias.copy_(torch.arange(3).repeat_interleave(4).float() / 4)
    result = torch.rand(1, 3, 4, 5, 6)
    motion = torch.zeros(1, 2, 5, 6)
    motion[0, 0, 2:, 3:] = 0.25
    for jitter in [(0.0, 0.0), (0.25, -0.125), (0.0, 0.3)]:
        shown = net._display(result, torch.tensor([jitter]), motion, torch.zeros(1, 1))[0, 0].detach().numpy()
        expected = filter_of(jitter, motion[0].permute(1, 2, 0).numpy()) / 4  # red, sub-pixel 0
        assert np.allclose(shown, expected)
        started = net._display(result, torch.tensor([jitter]), motion, torch.ones(1, 1))[0, 0].detach().numpy()
        assert np.allclose(started, filter_of(jitter, np.zeros((5, 6, 2))) / 4)  # a stream's start: motion unread
    assert FILTERS == ("moving", "still", "unjittered")
