"""``training.display``: the closed-form fit of a temporal model's shown-colour filters."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from training.display import NormalEquations, as_conv, blocks, fold, identity, main, split
from upscaler import TemporalUpscaler
from upscaler.archs.accum import AccumSR
from upscaler.models import get_model


@pytest.mark.parametrize("taps", [1, 3])
def test_the_fit_recovers_a_known_filter_in_the_layout_the_network_convolves_with(taps):
    s, rng = 2, np.random.default_rng(0)
    picture = rng.random((12 * s, 10 * s, 3), dtype=np.float32)
    truth_w, truth_b = torch.randn(s * s, s * s, taps, taps), torch.randn(s * s)
    folded = fold(picture, s)  # 3 x s² x h x w
    r = taps // 2
    padded = F.pad(torch.from_numpy(folded), (r, r, r, r), mode="replicate")
    target = F.conv2d(padded, truth_w, truth_b).numpy()  # per colour, as AccumSR._display applies it
    equations = NormalEquations(taps * taps * s * s, s * s)
    equations.add(blocks(folded, taps), target.transpose(0, 2, 3, 1).reshape(-1, s * s))
    weight, bias = as_conv(*equations.solve(ridge=1e-12), taps)
    assert np.allclose(weight, truth_w.numpy(), atol=1e-3) and np.allclose(bias, truth_b.numpy(), atol=1e-3)
    assert np.array_equal(fold(picture, s)[1, 3], picture[1::s, 1::s, 1])  # sub-pixel i * s + j, colour 1


@pytest.mark.parametrize("chroma", [None, "fitted", "as-is"])  # None: no --detail
def test_fitting_a_model_writes_weights_of_a_display_model_that_runs(tmp_path, chroma):
    from export.temporal import export_temporal

    torch.manual_seed(0)
    net = AccumSR(2, channels=8, blocks=1, history_channels=4)
    path = tmp_path / "tiny.safetensors"
    meta = {"name": "tiny", "arch": "accum", "scale": "2", "degradation": "sequence", "training": "{}",
            "params": json.dumps(net.inference_params())}  # fmt: skip
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    export_temporal(get_model(path), path.with_suffix(".onnx"), path.with_suffix(".folded.onnx"))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):  # smooth pictures: something a filter can reconstruct
        cv2.imwrite(str(images / f"{i}.png"), cv2.resize(rng.integers(0, 256, (24, 32, 3), np.uint8), (160, 120)))
    out = tmp_path / "fitted.safetensors"
    detail = chroma is not None
    split_fit = ["--detail", "--chroma", chroma] if detail else []
    assert main(["--model", str(path), "--data", str(images), "--size", "24x16", "--frames", "10", "--warmup", "2",
                 "--taps", "3", "--identity", "unjittered", "--out", str(out), *split_fit]) == 0  # fmt: skip
    model = get_model(out)
    kernels = (model.params["display"], model.params.get("detail"), model.state_channels)
    assert kernels == ((1, 3, 8) if detail else (3, None, 8))
    rows = model.training["display_fit"]["rows"]
    assert set(rows) == {"moving", "still", "unjittered"} and min(rows.values()) > 0  # every filter saw pixels
    state = {k: v.numpy() for k, v in load_file(str(out)).items()}
    weight, taps = state["display.weight"], 1 if detail else 3
    assert np.array_equal(weight[8:], identity(4, taps)[0])
    assert np.array_equal(weight[:4], identity(4, taps)[0]) == (chroma == "as-is")  # as-is: only the luma filtered
    if detail:  # the luma's filter: the 3x3 fit less its 1x1 part; none where the filter shows the state as it is
        assert state["detail.weight"][:8].any() and not state["detail.weight"][8:].any()
    export_temporal(model, out.with_suffix(".onnx"), out.with_suffix(".folded.onnx"))
    up = TemporalUpscaler(out, "onnxruntime-cpu")
    frame = np.zeros((16, 24, 3), np.uint8)
    assert up.upscale(frame, (0.25, -0.25), np.zeros((16, 24, 2), np.float32)).shape == (32, 48, 3)


def test_a_refit_starts_from_the_state_whatever_filters_the_model_had(tmp_path, capsys):
    """``--refit``: a model with display filters is fitted again from its state, as the same network without
    them would be (its old filters dropped); without ``--refit`` it is refused, with the hint."""
    from export.temporal import export_temporal

    torch.manual_seed(0)
    plain = AccumSR(2, channels=8, blocks=1, history_channels=4)
    shown = AccumSR(2, channels=8, blocks=1, history_channels=4, display=1)
    shown.load_plain_state_dict(plain.state_dict())
    with torch.no_grad():
        shown.display.weight.add_(torch.randn_like(shown.display.weight) * 0.1)
    paths = {}
    for name, net in (("plain", plain), ("shown", shown)):
        paths[name] = tmp_path / f"{name}.safetensors"
        meta = {"name": name, "arch": "accum", "scale": "2", "degradation": "sequence", "training": "{}",
                "params": json.dumps(net.inference_params())}  # fmt: skip
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(paths[name]), metadata=meta)
        export_temporal(
            get_model(paths[name]), paths[name].with_suffix(".onnx"), paths[name].with_suffix(".folded.onnx")
        )
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):  # as many as every filter needs rows
        cv2.imwrite(str(images / f"{i}.png"), cv2.resize(rng.integers(0, 256, (24, 32, 3), np.uint8), (160, 120)))
    fit = ["--data", str(images), "--size", "24x16", "--frames", "10", "--warmup", "2", "--taps", "3", "--detail"]
    assert main(["--model", str(paths["shown"]), *fit, "--out", str(tmp_path / "no.safetensors")]) == 2
    assert "--refit fits its filters again" in capsys.readouterr().err
    for name, extra in (("plain", []), ("shown", ["--refit"])):
        assert (
            main(["--model", str(paths[name]), *fit, *extra, "--out", str(tmp_path / f"{name}-fit.safetensors")]) == 0
        )
    ours, theirs = (load_file(str(tmp_path / f"{n}-fit.safetensors")) for n in ("shown", "plain"))
    assert set(ours) == set(theirs) and all(torch.allclose(ours[k], theirs[k], atol=1e-5) for k in ours)
    assert get_model(tmp_path / "shown-fit.safetensors").params["detail"] == 3


def test_the_fit_refuses_a_model_it_cannot_fit(capsys):
    assert main(["--model", "x4-fast", "--data", ".", "--out", "unused.safetensors"]) == 2
    assert "not an accumulating model" in capsys.readouterr().err


def test_a_split_fit_is_the_3x3_fit_shared_out_and_its_1x1_part_the_best_from_the_block_alone():
    """``split``: the 1x1 part is the least-squares fit from the block's own sub-pixels (what ``--taps 1``
    fits), and the 3x3 fit less it (the luma detail) adds back to the 3x3 fit."""
    s, rng = 2, np.random.default_rng(2)
    folded = fold(rng.random((10 * s, 12 * s, 3), dtype=np.float32), s)
    target = rng.random((3 * 10 * 12, s * s))
    wide, narrow = NormalEquations(9 * s * s, s * s), NormalEquations(s * s, s * s)
    wide.add(blocks(folded, 3), target)
    narrow.add(blocks(folded, 1), target)
    (whole_w, _), (own_w, own_b) = split(wide, 1e-4, s * s, 3)
    alone_w, alone_b = as_conv(*narrow.solve(1e-4), 1)
    assert np.allclose(own_w, alone_w, atol=1e-4) and np.allclose(own_b, alone_b, atol=1e-4)
    assert np.allclose(whole_w, as_conv(*wide.solve(1e-4), 3)[0])
    assert not np.allclose(whole_w[:, :, 1, 1], own_w[:, :, 0, 0], atol=1e-3)  # the neighbours change the centre


def test_a_split_fit_needs_3x3_filters(capsys):
    assert main(["--model", "x4-temporal", "--data", ".", "--detail", "--out", "unused.safetensors"]) == 2
    assert "--detail splits a 3x3 fit" in capsys.readouterr().err
