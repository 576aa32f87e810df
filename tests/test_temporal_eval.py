"""Temporal evaluation: standard sequences, the figures (steady state, moving layer, warping error) and the
``upscaler bench --sequences`` mode, with a tiny temporal model made here (no shipped temporal weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from upscaler.bench.rendered import (
    AccumulationSubject,
    BicubicSubject,
    NamedSequence,
    evaluate_sequence,
    evaluate_sequences,
    masked_psnr,
    relative_warping_error,
    reproject_hr,
    standard_sequences,
)
from upscaler.bench.sequence import count_sequences
from upscaler.metrics import psnr
from upscaler.sequences import SequenceFrame
from upscaler.sysinfo import cpu_flags, cpu_name

SIZE, FRAMES = (24, 16), 10


@pytest.fixture(scope="module")
def sequences(set5_dir):
    return standard_sequences(set5_dir, 4, size=SIZE, frames=FRAMES, limit=4)


@pytest.fixture(scope="module")
def tiny_temporal(tmp_path_factory) -> Path:
    """``TemporalSR(4, channels=8, blocks=1, history_channels=4)`` as ``upscaler train`` saves it, and its graphs."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from safetensors.torch import save_file

    from export.temporal import export_temporal
    from upscaler.archs.temporal import TemporalSR
    from upscaler.models import get_model

    torch.manual_seed(0)
    net = TemporalSR(4, channels=8, blocks=1, history_channels=4)
    path = tmp_path_factory.mktemp("tiny") / "m.safetensors"
    metadata = {"format": "pt", "name": "tiny-temporal", "arch": "temporal", "scale": "4",
                "params": json.dumps(net.inference_params(), sort_keys=True), "degradation": "sequence",
                "training": "{}"}  # fmt: skip
    save_file({k: v.detach().float().contiguous() for k, v in net.state_dict().items()}, str(path), metadata=metadata)
    export_temporal(get_model(path), path.with_suffix(".onnx"), path.with_suffix(".folded.onnx"))
    return path


def test_standard_sequences_are_deterministic_and_of_eight_kinds(set5_dir, sequences):
    kinds = [s.kind for s in sequences]
    assert set(kinds) == {"pan", "layer", "cut", "still", "still-unjittered", "slow", "fade", "moderate"}
    for moderate in (s for s in sequences if s.kind == "moderate"):  # at most 1.2 HR px per axis
        assert max(np.abs(f.motion).max() for f in moderate.frames) <= 1.2 / 4 + 1e-5
    (fade,) = [s for s in sequences if s.kind == "fade"]  # image 2: from black, full level from frame 6 on
    assert fade.frames[0].lr.max() == 0 and fade.frames[6].lr.mean() > 20 and fade.name == "set5/butterfly-fade"
    assert kinds.count("slow") == 4 and count_sequences(set5_dir, 4) == len(sequences)
    for slow in (s for s in sequences if s.kind == "slow"):  # camera and layer at most 0.3 HR px per axis
        assert max(np.abs(f.motion).max() for f in slow.frames) <= 0.3 / 4 + 1e-5
        assert all(f.dynamic.any() for f in slow.frames) and all(f.depth.min() == 2.0 for f in slow.frames[:1])
    assert kinds.count("pan") == 4 and kinds.count("layer") == 2 and kinds.count("cut") == 1  # images 0..3
    assert kinds.count("still") == 1 and kinds.count("still-unjittered") == 1  # images 1 and 3
    still = next(s for s in sequences if s.kind == "still")
    assert all(np.abs(f.motion).max() < 1e-6 for f in still.frames[1:])  # the camera does not move
    assert len({f.jitter for f in still.frames}) > 8  # but the samples do
    unjittered = next(s for s in sequences if s.kind == "still-unjittered")
    assert {f.jitter for f in unjittered.frames} == {(0.0, 0.0)} and all(
        np.array_equal(f.lr, unjittered.frames[0].lr) for f in unjittered.frames
    )  # every frame samples alike: nothing to accumulate
    names = [s.name for s in sequences]
    assert len(set(names)) == len(names) and all(n.startswith("set5/") for n in names)
    again = standard_sequences(set5_dir, 4, size=SIZE, frames=FRAMES, limit=4)
    assert [s.name for s in again] == names
    for a, b in zip(sequences, again):
        assert len(a.frames) == FRAMES
        for fa, fb in zip(a.frames, b.frames):
            assert np.array_equal(fa.lr, fb.lr) and np.array_equal(fa.hr, fb.hr)
            assert np.array_equal(fa.motion, fb.motion) and fa.jitter == fb.jitter
    first = sequences[0].frames
    assert first[0].lr.shape == (16, 24, 3) and first[0].hr.shape == (64, 96, 3)
    speed = np.abs(first[3].motion).max()
    assert 0.2 / 1.5 < speed <= 1.5 + 1e-4  # a sub-pixel pan in LR pixels per frame
    cut = next(s for s in sequences if s.kind == "cut")
    assert cut.cut_at == FRAMES // 2 and sum(f.cut for f in cut.frames) == 1  # 10 frames: half-way, not 16
    layer = next(s for s in sequences if s.kind == "layer")
    assert all(f.dynamic.any() for f in layer.frames)  # the sprite stays on screen
    assert not any(f.dynamic.any() for f in sequences[0].frames)
    assert cut.name == "set5/baby-cut-butterfly"  # to another image's shot
    assert [s.name for s in standard_sequences(set5_dir, 2, size=(12, 8), frames=4, limit=2)][-4:] == [
        "set5/bird-pan", "set5/bird-still", "set5/bird-slow", "set5/bird-moderate"]  # fmt: skip
    long = standard_sequences(set5_dir, 2, size=(12, 8), frames=20, limit=1)
    assert [s.kind for s in long] == ["pan", "layer", "cut", "slow", "moderate"] and long[2].cut_at == 16
    assert long[2].name == "set5/baby-cut-baby-flipped"  # one image: its shot upside down


def test_kinds_make_one_kind_of_every_image_and_the_standard_sets_shots_stay_as_they_are(set5_dir):
    """``kinds``: a larger sample of a kind (every image's still shot, say); the images the standard set gives
    that kind to get the same sequence, and the set without ``kinds`` is as it was."""
    from upscaler.bench.rendered import iter_standard_sequences
    from upscaler.bench.sequence import count_sequences

    standard = standard_sequences(set5_dir, 4, size=(12, 8), frames=6, limit=4)
    picked = list(iter_standard_sequences(set5_dir, 4, size=(12, 8), frames=6, limit=4, kinds=["still", "fade"]))
    assert [s.kind for s in picked] == ["still", "fade"] * 4 and len(picked) == count_sequences(
        set5_dir, 4, ["fade", "still"]
    )
    assert len(standard) == count_sequences(set5_dir, 4)
    for kind in ("still", "fade"):
        (ours,) = [s for s in standard if s.kind == kind]
        twin = next(s for s in picked if s.name == ours.name)
        assert all(np.array_equal(a.lr, b.lr) and a.jitter == b.jitter for a, b in zip(ours.frames, twin.frames))
    with pytest.raises(ValueError, match="unknown sequence kind sideways"):
        next(iter_standard_sequences(set5_dir, 4, kinds=["sideways"]))


def test_plain_accumulation_beats_bicubic_in_the_steady_state(sequences):
    pans = [s for s in sequences if s.kind == "pan"][:2]
    report = evaluate_sequences([BicubicSubject(4), AccumulationSubject(4)], pans, warmup=4)
    bicubic, accumulation = (s["summary"]["pan"] for s in report["subjects"])
    assert accumulation["steady_psnr"] > bicubic["steady_psnr"] + 0.2
    assert accumulation["warping_error"] < bicubic["warping_error"]  # jittered bicubic flickers
    assert bicubic["median_ms"] > 0
    json.dumps(report, allow_nan=False)  # plain JSON


class _Replay:
    """A subject that returns given frames (the reference, or the reference made to flicker)."""

    uses_motion = uses_jitter = False

    def __init__(self, name: str, outputs: list[np.ndarray]) -> None:
        self.name, self.outputs, self.t = name, outputs, 0

    def reset(self) -> None:
        self.t = 0

    def step(self, frame: SequenceFrame) -> np.ndarray:
        self.t += 1
        return self.outputs[self.t - 1]


def test_warping_error_is_zero_for_the_reference_and_larger_for_flicker(sequences):
    seq = next(s for s in sequences if s.kind == "layer")
    hr = [f.hr for f in seq.frames]
    rng = np.random.default_rng(0)
    flicker = [np.clip(h.astype(np.int16) + (6 if t % 2 else -6) + rng.integers(-2, 3, h.shape), 0, 255)
               .astype(np.uint8) for t, h in enumerate(hr)]  # fmt: skip
    same = evaluate_sequence(_Replay("reference", hr), seq, warmup=2)
    flickering = evaluate_sequence(_Replay("flicker", flicker), seq, warmup=2)
    assert same["warping_error"] == 0.0 and same["steady_psnr"] is None  # identical: PSNR inf, reported as None
    assert flickering["warping_error"] > 5.0
    f0, f1 = seq.frames[0], seq.frames[1]
    assert relative_warping_error(f0.hr, f1.hr, f0.hr, f1.hr, f1.motion, 4) == 0.0
    # a constant offset does not change over time: it costs (next to) nothing; a brightness step does
    lifted = [h.astype(np.float32) + 10 for h in (f0.hr, f1.hr)]
    assert relative_warping_error(lifted[0], lifted[1], f0.hr, f1.hr, f1.motion, 4) < 1e-3
    assert relative_warping_error(f0.hr, lifted[1], f0.hr, f1.hr, f1.motion, 4) == pytest.approx(10, abs=1e-3)


def test_reprojection_matches_the_torch_convention(sequences):
    torch = pytest.importorskip("torch")
    from upscaler.archs.temporal import reproject

    frame = sequences[0].frames[5]
    image = sequences[0].frames[4].hr.astype(np.float32)
    ours, inside = reproject_hr(image, frame.motion, 4)
    history = torch.from_numpy(image.transpose(2, 0, 1)[None].copy())
    motion = torch.from_numpy(frame.motion.transpose(2, 0, 1)[None].copy())
    theirs = reproject(history, motion, 4)[0].numpy().transpose(1, 2, 0)
    assert np.abs(ours - theirs).max() < 0.05  # OpenCV's fixed-point bilinear weights, on 0..255
    assert inside.mean() > 0.8  # a sub-pixel pan leaves at most a few pixels of an edge unseen


def test_the_moving_layer_psnr_counts_the_mask_only():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    out = gt.copy()
    mask = np.zeros((40, 40), bool)
    mask[10:20, 10:20] = True
    out[mask] = np.clip(out[mask].astype(int) + 20, 0, 255).astype(np.uint8)  # wrong on the mask only
    whole = psnr(out, gt, border=4)
    on_mask = masked_psnr(out, gt, mask, border=4)
    assert on_mask < whole - 5  # the error concentrated where the mask is
    assert masked_psnr(out, gt, ~mask, border=4) == float("inf")  # right everywhere else
    out2 = gt.copy()
    out2[30:34, 30:34] = 0  # wrong outside the mask only
    assert masked_psnr(out2, gt, mask, border=4) == float("inf") and psnr(out2, gt, border=4) < 40
    assert np.isnan(masked_psnr(out, gt, np.zeros_like(mask), border=4))
    # in evaluate_sequence: a subject wrong only on the layer's mask has a low moving PSNR, a high steady one
    frames = []
    for t in range(6):
        hr = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        dyn = np.zeros((32, 48), bool)
        dyn[8:16, 8 + t : 24 + t] = True
        frames.append(SequenceFrame(hr[::4, ::4].copy(), hr, (0.0, 0.0), np.zeros((8, 12, 2), np.float32), dyn))
    seq = NamedSequence("synthetic-layer", "layer", frames)
    spoiled = []
    for f in frames:
        o = f.hr.copy()
        o[f.dynamic] = 255 - o[f.dynamic]
        spoiled.append(o)
    record = evaluate_sequence(_Replay("spoiled", spoiled), seq, warmup=2)
    assert record["dynamic_psnr"] < record["steady_psnr"] - 5


def test_cli_sequence_mode_end_to_end(tmp_path, set5_dir, tiny_temporal):
    out = {k: tmp_path / f"seq.{k}" for k in ("json", "md")}
    result = run_cli(
        "bench", "--sequences", str(set5_dir), "-m", str(tiny_temporal), "x4-fast", "--engine", "cpu",
        "--sequence-size", "24x16", "--frames", "8", "--limit", "1", "--sequence-warmup", "3", "--flow",
        "--threads", "1", "--json", str(out["json"]), "--markdown", str(out["md"]), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out["json"].read_text())
    assert report["mode"] == "sequences"
    assert report["machine"]["cpu"] == cpu_name() and report["machine"]["cpu_flags"] == list(cpu_flags())
    assert report["machine"]["libraries"]["onnxruntime"]
    assert report["settings"]["scale"] == 4 and report["settings"]["size"] == "24x16"
    assert [q["kind"] for q in report["sequences"]] == ["pan", "layer", "cut", "slow", "moderate"]
    names = [s["name"] for s in report["subjects"]]
    assert names == ["bicubic", "accumulation", "tiny-temporal", "tiny-temporal (flow)", "x4-fast"]
    by_name = {s["name"]: s for s in report["subjects"]}
    assert by_name["tiny-temporal"]["motion"] == "exact" and by_name["tiny-temporal (flow)"]["motion"] == "estimated"
    assert by_name["tiny-temporal"]["engine"].startswith("onnxruntime-cpu")
    for s in report["subjects"]:
        summary = s["summary"]
        assert set(summary) == {"pan", "layer", "cut", "slow", "moderate", "all"}
        pan = s["sequences"][0]  # the summary is the mean of the per-frame figures after the warm-up
        assert summary["pan"]["steady_psnr"] == pytest.approx(float(np.mean(pan["psnr"][3:])), abs=2e-3)
        assert summary["all"]["median_ms"] > 0 and len(pan["psnr"]) == 8
    # bicubic's figure, measured again here on the same (deterministic) sequence, frames 3 on
    import cv2

    (first,) = [q for q in standard_sequences(set5_dir, 4, size=(24, 16), frames=8, limit=1) if q.kind == "pan"]
    again = [psnr(cv2.resize(f.lr, (96, 64), interpolation=cv2.INTER_CUBIC), f.hr, border=4) for f in first.frames[3:]]
    assert by_name["bicubic"]["summary"]["pan"]["steady_psnr"] == pytest.approx(float(np.mean(again)), abs=2e-3)
    md = out["md"].read_text()
    assert md.startswith(f"Measured on {cpu_name()}") and "| subject |" in md and "tiny-temporal (flow)" in md
    assert "accumulation" in result.stdout


def test_cli_sequence_mode_with_kinds_runs_those_of_every_image(tmp_path, set5_dir):
    out = tmp_path / "still.json"
    result = run_cli(
        "bench", "--sequences", str(set5_dir), "-m", "x4-fast", "--engine", "cpu", "--sequence-size", "12x8",
        "--frames", "4", "--limit", "2", "--sequence-warmup", "1", "--kinds", "slow", "still", "--threads", "1",
        "--json", str(out), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["settings"]["kinds"] == ["still", "slow"]  # the report's order
    assert [q["kind"] for q in report["sequences"]] == ["still", "slow", "still", "slow"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sequences", "/no/such/dir"], "no such folder"),
        (["--sequence-size", "big"], "--sequence-size"),
        (["--frames", "1"], "--frames"),
        (["--frames", "8", "--sequence-warmup", "8"], "exceed"),
        (["--limit", "x"], "--limit"),
        (["-m", "x4-fast", "x2-fast"], "one scale"),
        (["-m", "x4-fast", "--flow"], "--flow"),
        (["--engine", "cpu", "torch"], "one engine"),
        (["--url", "http://127.0.0.1:9"], "separate modes"),
        (["--kinds", "still", "sideways"], "--kinds: unknown kind sideways"),
    ],
)
def test_bad_sequence_arguments_are_one_line(args, message, set5_dir):
    base = ["bench", "--no-progress"]
    if "--sequences" not in args:
        base += ["--sequences", str(set5_dir)]
    result = run_cli(*base, *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_two_weights_files_with_one_recorded_name_get_a_row_each(tmp_path):
    """An earlier release's weights record the shipped model's name: the harness gave both one row (the
    later silently replaced the earlier). Now the file's stem names the other; the same weights twice
    (a name and its alias) stay one row."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from upscaler.bench.sequence import models_of_one_scale
    from upscaler.models import get_model

    shipped = get_model("x2-temporal").weights.path
    with safe_open(shipped, "pt") as f:
        meta = {**f.metadata(), "name": "x2-temporal"}
    earlier = tmp_path / "x2-temporal-earlier.safetensors"
    save_file(load_file(shipped), earlier, metadata=meta)
    names = [d.name for d in models_of_one_scale(["x2-temporal", str(earlier), "x2", "x2-fast"], "sequence mode")]
    assert names == ["x2-temporal", "x2-temporal-earlier", "x2-fast"]
    (tmp_path / "b").mkdir()
    again = shutil.copy(earlier, tmp_path / "b" / earlier.name)  # a third file of that name: no way to tell
    with pytest.raises(ValueError, match="two models named 'x2-temporal-earlier'"):
        models_of_one_scale(["x2-temporal", str(earlier), str(again)], "sequence mode")
