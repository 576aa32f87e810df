"""The still-camera hold (``runtime.hold``): which pixels it holds, that it lets go at a fade, a cut, a changed
screen and an unjittered stream, and that both engines hold alike and keep more of a still shot with it."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from upscaler import TemporalUpscaler
from upscaler.archs import LUMA
from upscaler.archs.accum import AccumSR, jitter_coefficients
from upscaler.models import get_model
from upscaler.runtime.hold import AGE, StillHold, disagreement
from upscaler.sequences import Camera, SequenceSpec, make_sequence

H, W = 16, 24


def _noise(t: int) -> np.ndarray:
    """A still shot's disagreement: aliasing, zero-mean pixel by pixel, about 2 grey levels."""
    return np.random.default_rng(t).normal(0.0, 0.01, (H, W)).astype(np.float32)


def _jitter(t: int) -> tuple[float, float]:
    return (((t * 0.618) % 1.0) - 0.5, ((t * 0.382) % 1.0) - 0.5)


def _run(hold: StillHold, frames: int, disagreement=_noise, motion=None, jitter=_jitter) -> list:
    still = np.zeros((2, H, W), np.float32)
    out = []
    for t in range(frames):
        m = still if t == 0 or motion is None else motion(t)
        out.append(hold.step(lambda t=t: disagreement(t), m, jitter(t), fresh=t == 0))
    return out


def test_a_still_jittered_shot_is_held_once_old_enough_and_moving_pixels_and_their_neighbours_never():
    def moving(t):
        m = np.zeros((2, H, W), np.float32)
        m[:, 4:8, 6:10] = 0.25
        return m

    held = _run(StillHold(), 6, motion=moving)
    assert held[0] is None  # a fresh frame has nothing to keep
    assert all(h is not None for h in held[AGE - 1 :])
    last = held[-1]
    assert last[3:9, 5:11].sum() == 0  # the moving block and its 3 x 3 ring
    assert last[:2].all() and last[10:].all() and last[:, 12:].all()


def test_a_fade_a_cut_and_an_unjittered_stream_are_not_held():
    assert all(h is None for h in _run(StillHold(), 6, disagreement=lambda t: _noise(t) + 0.05))  # brighter
    assert all(h is None for h in _run(StillHold(), 6, jitter=lambda t: (0.0, 0.0)))
    assert all(h is None for h in _run(StillHold(), 6, jitter=lambda t: (0.25, -0.25)))  # a constant offset


def test_a_screen_that_changes_its_picture_is_let_go_and_held_again_once_it_settles():
    def screen(t):
        d = _noise(t)
        if t >= 6:  # a window of the still picture shows something else from frame 6 on
            d[4:10, 8:16] += 0.06
        return d

    held = _run(StillHold(), 12, disagreement=screen)
    assert held[5][4:10, 8:16].all()
    for t in (6, 7):  # the jump restarts the window's age: the network gets the frames to drop its history
        assert held[t][4:10, 8:16].sum() == 0 and held[t][13:].all()
    assert held[6 + AGE][5:9, 9:15].all()  # settled (the network would have let the old picture go): held again


def test_the_disagreement_is_the_frame_against_the_models_own_prediction():
    torch.manual_seed(0)
    scale, jitter = 4, torch.tensor([[0.2, -0.35]])
    state = torch.rand(1, 3, H * scale, W * scale)
    own = jitter_coefficients(jitter, scale, 0.5)[1][:, :, 4]
    net = AccumSR(scale)
    frame, luma = torch.rand(1, 3, H, W), torch.tensor(LUMA).reshape(1, 3, 1, 1)
    predicted = net._predicted(torch.nn.functional.pixel_unshuffle(state, scale), own)
    expected = ((frame - predicted) * luma).sum(1)[0].numpy()
    interleaved = np.ascontiguousarray(np.concatenate([state[0].numpy(), np.zeros((1, H * scale, W * scale),
                                                      np.float32)]).transpose(1, 2, 0))  # fmt: skip
    motion = np.zeros((2, H, W), np.float32)
    motion[1, 3:5, 7:9] = 0.5
    got = disagreement(interleaved, frame[0].numpy(), own[0].numpy(), scale, motion, np.empty((H, W), np.float32))
    assert np.abs(got - expected)[motion[1] == 0].max() < 1e-5 and not got[3:5, 7:9].any()  # moving: not read


def _still_shot(frames: int, cut_at: int | None = None):
    rng = np.random.default_rng(4)
    scenes = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(2)]
    scenes = [np.ascontiguousarray(np.repeat(np.repeat(s[::4, ::4], 4, 0), 4, 1)) for s in scenes]  # coarse detail
    shots = [make_sequence(s, SequenceSpec(4, (W, H), frames, Camera(center=(64, 48)))) for s in scenes]
    return shots[0] if cut_at is None else shots[0][:cut_at] + shots[1][cut_at:]


def _without_hold():
    model = get_model("x4-temporal")
    return dataclasses.replace(model, params={k: v for k, v in model.params.items() if k != "hold"})


def test_both_engines_hold_a_still_shot_alike_and_it_keeps_more_of_what_it_gathered():
    assert get_model("x4-temporal").params.get("hold")
    cpu, torch_engine = TemporalUpscaler("x4-temporal", "onnxruntime-cpu"), TemporalUpscaler(
        "x4-temporal", "torch-cpu")  # fmt: skip
    plain = TemporalUpscaler(_without_hold(), "onnxruntime-cpu")
    for f in _still_shot(24):
        a, b = cpu.upscale(f.lr, f.jitter, f.motion), torch_engine.upscale(f.lr, f.jitter, f.motion)
        plain.upscale(f.lr, f.jitter, f.motion)
        assert np.abs(a.astype(int) - b).max() <= 1
    kept, unheld = cpu.engine._history[..., 3].mean(), plain.engine._history[..., 3].mean()
    assert kept > 1.4 * unheld  # the network alone settles on a window of about ten frames


def test_a_cut_on_a_still_camera_is_not_held_over():
    def after_cut(model) -> float:
        stream, errors = TemporalUpscaler(model, "onnxruntime-cpu"), []
        for t, f in enumerate(_still_shot(12, cut_at=8)):
            out = stream.upscale(f.lr, f.jitter, f.motion)
            if 8 <= t < 11:
                errors.append(np.mean((out.astype(float) - f.hr) ** 2))
        return float(np.mean(errors))

    assert after_cut("x4-temporal") <= 1.05 * after_cut(_without_hold())
