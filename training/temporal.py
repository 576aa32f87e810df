"""Training temporal models (``data.degradation = "sequence"``) on rendered sequences made on the fly.

Each sample is a short sequence from ``upscaler.sequences``: a photo from the
training folders as the scene, a random camera (sub-pixel pan, zoom drift,
small rotation), half the time a sprite layer cut from another photo moving
on its own, sometimes an exposure drift or a cut to a third photo; every
frame point-sampled with a Halton jitter, the reference anti-aliased, the
motion exact. The network runs through ``data.warmup_frames`` frames without
gradients (history builds up, as in a long stream), then back-propagates
through ``data.frames`` frames (truncated back-propagation through time); a
``data.early`` share of the steps trains the first ``data.frames`` frames of
the stream instead, from its start.

Loss per frame: L1 (or Charbonnier) to the reference, plus
``optim.temporal_weight`` times the L1 between the output's change from its
reprojected previous frame and the reference's (temporal stability: no
flicker the reference does not have). The first frame of a stream, and a cut
where the game says so (half of them), come with ``reset``; the history is
then the frame upsampled (as ``TemporalUpscaler`` does).

Optionally (``data.still``, ``data.unjittered``, ``data.motion_noise``) some
sequences hold the camera still, some are rendered without jitter (as video
frames are) with smooth noise on their motion (as estimated flow has): a
model trained only on jittered pans sharpens a static unjittered shot a
little more every frame. ``model.init`` starts from trained weights.

Validation: fixed sequences made from the validation folders (camera pans,
one with a layer), PSNR on Y from frame 8 on, beside plain accumulation.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from training.config import TrainConfig
from training.logs import RunLog
from training.trainer import Trainer, _atomic_save, _loss, load_initial_weights, lr_at, save_weights
from upscaler.archs import build_network, get_arch
from upscaler.archs.temporal import reproject
from upscaler.io import list_images, read_image
from upscaler.pipeline import to_rgb8
from upscaler.sequences import Camera, Layer, SequenceSpec, make_sequence, random_spec

__all__ = ["SequenceSet", "TemporalTrainer", "load_teacher", "step_window", "val_sequences"]

log = logging.getLogger(__name__)

#: Samples per axis per reference pixel in training (the evaluation uses ``upscaler.sequences.SUPERSAMPLES``).
TRAIN_SUPERSAMPLES = 3


def step_window(config: TrainConfig, step: int, batch: dict[str, torch.Tensor]) -> tuple[dict, int]:
    """The frames step ``step`` trains through and the first one with a gradient: the warm-up and then
    ``data.frames``, or (a ``data.early`` share of the steps, drawn from the seed and the step) the first
    ``data.frames`` from the stream's start, so that what a stream does before its history has built up
    (and that it must not count samples that bring nothing new) is trained too."""
    c = config.data
    if not c.early or np.random.default_rng([config.run.seed, step]).random() >= c.early:
        return batch, c.warmup_frames
    return {k: v[:, : c.frames] for k, v in batch.items()}, 0


class SequenceSet(Dataset):
    """Sequence ``i`` is drawn from a generator seeded by ``(seed, i)``: a resumed run sees the same data."""

    def __init__(self, images: list[np.ndarray], config: TrainConfig, length: int) -> None:
        self.images, self.config, self.length = images, config, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        c = self.config
        rng = np.random.default_rng([c.run.seed, index])
        pick = lambda: self.images[int(rng.integers(len(self.images)))]  # noqa: E731
        scene, texture = pick(), pick()
        cut_scene = pick() if rng.random() < 0.3 else None
        frames = c.data.warmup_frames + c.data.frames
        spec = random_spec(
            rng,
            scene.shape[:2],
            scale=c.model.scale,
            size=(c.data.patch, c.data.patch),
            frames=frames,
            layer_texture=texture,
            cut_scene_shape=None if cut_scene is None else cut_scene.shape[:2],
        )
        spec = _shot_mix(rng, spec, c)
        unjittered = False
        if c.data.still or c.data.unjittered:  # drawn after the rest: older configs see the same sequences
            if rng.random() < c.data.still:
                spec = replace(spec, camera=replace(spec.camera, velocity=(0.0, 0.0), zoom_rate=0.0,
                                                    rotation_rate=0.0))  # fmt: skip
            unjittered = bool(rng.random() < c.data.unjittered)
            if unjittered:
                spec = replace(spec, jitter=((0.0, 0.0),))
        seq = make_sequence(scene, spec, cut_scene, supersamples=TRAIN_SUPERSAMPLES)
        if unjittered and c.data.motion_noise > 0:
            for f in seq:  # what estimated flow hands over: smooth errors, not exact motion
                f.motion = f.motion + _smooth_noise(rng, f.motion.shape, c.data.motion_noise)
        reset = np.zeros((frames, 1), np.float32)
        reset[0] = 1.0
        given = rng.random() < 0.5  # half the streams come with the renderer's depth, half without
        if spec.cut_at is not None and rng.random() < 0.5:  # the game signalled this cut
            reset[spec.cut_at] = 1.0
        return {
            "lr": torch.from_numpy(np.stack([f.lr for f in seq]).transpose(0, 3, 1, 2).copy()),
            "hr": torch.from_numpy(np.stack([f.hr for f in seq]).transpose(0, 3, 1, 2).copy()),
            "jitter": torch.tensor([f.jitter for f in seq], dtype=torch.float32),
            "motion": torch.from_numpy(np.stack([f.motion for f in seq]).transpose(0, 3, 1, 2).copy()),
            "reset": torch.from_numpy(reset),
            "depth": torch.from_numpy(np.stack([f.depth * given for f in seq])[:, None].copy()),
        }


def _shot_mix(rng: np.random.Generator, spec: SequenceSpec, c: TrainConfig) -> SequenceSpec:
    """Slow shots (camera and layer at most ``data.slow_speed`` HR pixels per frame per axis) and fades from
    black, drawn only when the config asks for them (older configs see the same sequences)."""
    if c.data.slow and rng.random() < c.data.slow:
        v = c.data.slow_speed
        camera = replace(spec.camera, velocity=tuple(float(x) for x in rng.uniform(-v, v, 2)))
        layer = spec.layer and replace(spec.layer, velocity=tuple(float(x) for x in rng.uniform(-v, v, 2)))
        spec = replace(spec, camera=camera, layer=layer)
    if c.data.fade and rng.random() < c.data.fade:
        spec = replace(spec, fade=int(rng.integers(2, 13)))
    return spec


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """``h x w x 2`` float32 noise of standard deviation ``std``, smooth over about four pixels."""
    h, w, _ = shape
    coarse = rng.normal(0.0, std, (max(1, h // 4), max(1, w // 4), 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


def val_sequences(folders: list[Path], scale: int, *, size=(64, 48), frames: int = 24) -> list[list]:
    """Fixed validation sequences: per image a sub-pixel pan (every second one slow: at most 0.4 HR pixels per
    frame); every third also a layer."""
    out = []
    rng = np.random.default_rng(1234)
    files = [f for folder in folders for f in list_images(folder)][::4]
    textures = [to_rgb8(read_image(f)) for f in files[-3:]]
    for i, path in enumerate(files[:12]):
        scene = to_rgb8(read_image(path))
        h, w = scene.shape[:2]
        angle = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0.2, 1.5) * scale if i % 2 == 0 else rng.uniform(0.0, 0.4)  # odd ones: slow
        layer = None
        if i % 3 == 2:
            texture = textures[i % len(textures)]
            layer = Layer(texture.astype(np.float32) / 255, (size[0] * scale * 0.3, size[1] * scale * 0.3),
                          (size[0] * scale * 0.4, size[1] * scale * 0.4), (1.3 * scale, 0.7 * scale))  # fmt: skip
        camera = Camera(center=(w / 2, h / 2), zoom=1.0, velocity=(speed * math.cos(angle), speed * math.sin(angle)))
        spec = SequenceSpec(scale=scale, size=size, frames=frames, camera=camera, layer=layer)
        out.append(make_sequence(scene, spec))
    return out


def load_teacher(config: TrainConfig, student: torch.nn.Module) -> torch.nn.Module:
    """``model.teacher``, frozen, without display filters: it steps the student's state, which must have none."""
    from safetensors.torch import load_file

    from upscaler.models import ModelError, get_model

    try:
        model = get_model(config.model.teacher)
    except ModelError as exc:
        raise ValueError(f"model.teacher: {exc}") from None
    if (model.arch, model.scale) != (config.model.arch, config.model.scale) or model.arch != "accum":
        raise ValueError(f"model.teacher: {model.name} is {model.arch} x{model.scale}; accum x{config.model.scale} "
                         "distils from accum")  # fmt: skip
    if getattr(student, "display_planes", 0):
        raise ValueError("model.teacher: the student must train without display filters (fit them after)")
    net = build_network(model.arch, model.scale, {k: v for k, v in model.params.items() if k != "display"})
    state = load_file(str(model.weights.verified()))
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("display.")})
    return net.eval().requires_grad_(False)


class TemporalTrainer:
    """Trains a ``temporal`` network from a ``TrainConfig`` whose data degradation is ``sequence``."""

    def __init__(self, config: TrainConfig, *, data_root: str | None = None, restart: bool = False,
                 progress: bool = True) -> None:  # fmt: skip
        self.config, self.progress = config, progress
        self.out = Path(config.run.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.run.seed)
        if config.run.threads:
            torch.set_num_threads(config.run.threads)
        self.device = Trainer._pick_device(config.run.device)
        self.net = build_network(config.model.arch, config.model.scale, config.model.params).to(self.device)
        self.depth = get_arch(config.model.arch).depth  # the network takes the renderer's depth
        self.ema = build_network(config.model.arch, config.model.scale, config.model.params).to(self.device)
        self.ema.load_state_dict(self.net.state_dict())
        o = config.optim
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.step, self.started, self.elapsed = 0, time.time(), 0.0
        self.images = [to_rgb8(read_image(f)) for d in config.data_dirs("train", data_root) for f in list_images(d)]
        self.images = [im for im in self.images if min(im.shape[:2]) >= 64]
        self.val = val_sequences(config.data_dirs("val", data_root), config.model.scale)
        self.teacher = load_teacher(config, self.net).to(self.device) if config.model.teacher else None
        ckpt = self.out / "last.pt"
        if config.model.init and not (ckpt.exists() and not restart):  # fine-tuning: a checkpoint wins
            load_initial_weights(self.net, config)
            self.ema.load_state_dict(self.net.state_dict())
        if ckpt.exists() and not restart:
            state = torch.load(ckpt, map_location=self.device, weights_only=False)
            self.net.load_state_dict(state["net"])
            self.ema.load_state_dict(state["ema"])
            self.opt.load_state_dict(state["opt"])
            self.step, self.elapsed = state["step"], state["elapsed"]
            log.info("resumed %s at step %d", ckpt, self.step)
        self.logs = RunLog(self.out, config.run.tensorboard)
        self.logs.trim(self.step)

    def _history(self, lr: torch.Tensor) -> torch.Tensor:
        """The state a stream starts from (the frame upsampled, and what else the network carries)."""
        start = getattr(self.net, "start_state", None)
        if start is not None:
            return start(lr)
        return F.interpolate(lr, scale_factor=self.config.model.scale, mode="bilinear", align_corners=False)

    def _unroll(self, net, batch: dict[str, torch.Tensor], grad_from: int) -> tuple[torch.Tensor, float]:
        """Run the sequences through ``net``; loss over frames from ``grad_from`` on."""
        c = self.config
        lr = batch["lr"].to(self.device).float() / 255
        hr = batch["hr"].to(self.device).float() / 255
        jitter, motion = batch["jitter"].to(self.device), batch["motion"].to(self.device)
        reset = batch["reset"].to(self.device)
        frames = lr.shape[1]
        history, previous, loss, count = None, None, lr.new_zeros(()), 0
        for t in range(frames):
            with torch.set_grad_enabled(t >= grad_from):
                r = reset[:, t]
                fresh = self._history(lr[:, t])
                if history is None:
                    history = fresh
                else:  # a reset stream starts from the frame upsampled, with no motion
                    keep = (1 - r).view(-1, 1, 1, 1)
                    history = history * keep + fresh * (1 - keep)
                m = motion[:, t] * (1 - r).view(-1, 1, 1, 1)
                extra = (batch["depth"][:, t].to(self.device),) if self.depth else ()
                state = net(lr[:, t], jitter[:, t], m, history, r, *extra)
                out = state[:, :3]
                if t >= grad_from and t > 0:
                    loss = loss + _loss(out, hr[:, t], c.optim.loss)
                    if self.teacher is not None:
                        loss = loss + c.optim.distil_weight * self._distil(state, lr[:, t], jitter[:, t], m,
                                                                           history, r, extra)  # fmt: skip
                    count += 1
                    if c.optim.temporal_weight > 0 and previous is not None:
                        s = c.model.scale
                        change = out - reproject(previous, m, s)
                        truth = hr[:, t] - reproject(hr[:, t - 1], m, s)
                        keep = (1 - r).view(-1, 1, 1, 1)
                        loss = loss + c.optim.temporal_weight * ((change - truth).abs() * keep).mean()
            history, previous = state, out
            if t < grad_from:
                history, previous = history.detach(), previous.detach()
        return loss / max(count, 1), float(count)

    def _distil(self, state: torch.Tensor, *inputs) -> torch.Tensor:
        """L1 between the step's colour and accumulated weight and the teacher's from the same state and frame
        (``inputs``: ``net``'s arguments, depth last as a tuple): the teacher shows, per pixel, how much of this
        student's own history to keep (a denser signal than the reference, which says only where to end up)."""
        *args, extra = inputs
        with torch.no_grad():
            target = self.teacher(*args, *extra)
        return (state[:, :4] - target[:, :4]).abs().mean()

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean PSNR-Y over frames >= 8 of the validation sequences, EMA weights."""
        from upscaler.metrics import psnr

        s = self.config.model.scale
        scores = []
        self.ema.eval()
        for seq in self.val:
            history = None
            for t, f in enumerate(seq):
                lr = torch.from_numpy(f.lr.transpose(2, 0, 1)[None].copy()).float().to(self.device) / 255
                jitter = torch.tensor([f.jitter], dtype=torch.float32, device=self.device)
                motion = torch.from_numpy(f.motion.transpose(2, 0, 1)[None].copy()).to(self.device)
                r = torch.tensor([[1.0 if t == 0 else 0.0]], device=self.device)
                history = self._history(lr) if history is None else history
                history = self.ema(lr, jitter, motion, history, r)
                if t >= 8:
                    out = (history[0, :3].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
                    scores.append(psnr(out, f.hr, border=s))
        return {"seq-val": float(np.mean(scores))}

    def save_checkpoint(self) -> None:
        state = {"net": self.net.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                 "step": self.step, "elapsed": self.elapsed, "config": self.config.to_dict()}  # fmt: skip
        _atomic_save(lambda p: torch.save(state, p), self.out / "last.pt")

    def run(self) -> Path:
        c = self.config
        total = c.optim.steps
        data = SequenceSet(self.images, c, total * c.data.batch)
        sampler = range(self.step * c.data.batch, total * c.data.batch)
        loader = DataLoader(data, batch_size=c.data.batch, sampler=sampler, num_workers=c.data.workers,
                            persistent_workers=c.data.workers > 0)  # fmt: skip
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, desc=c.name, dynamic_ncols=True)
        losses: list[float] = []
        tick, logged = time.time(), self.elapsed
        for batch in loader:
            lr = lr_at(self.step, c.optim.lr, c.optim.min_lr, c.optim.warmup_steps, total)
            for group in self.opt.param_groups:
                group["lr"] = lr
            self.net.train()
            loss, _ = self._unroll(self.net, *step_window(c, self.step, batch))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.optim.grad_clip or float("inf"))
            if not torch.isfinite(norm):  # one bad batch must not turn every weight into NaN: skip it
                log.warning("step %d: non-finite gradient (loss %s), update skipped", self.step, float(loss))
                self.opt.zero_grad(set_to_none=True)
            else:
                self.opt.step()
            with torch.no_grad():
                for e, p in zip(self.ema.parameters(), self.net.parameters()):
                    e.lerp_(p, 1 - c.optim.ema if c.optim.ema else 1.0)
            losses.append(float(loss.detach()))
            self.step += 1
            now = time.time()
            self.elapsed += now - tick
            tick = now
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{lr:.1e}")
            if self.step % c.run.log_every == 0:
                rate = len(losses) * c.data.batch / max(1e-9, self.elapsed - logged)
                self.logs.train(self.step, self.elapsed, lr, float(np.mean(losses)), rate)
                losses, logged = [], self.elapsed
            if self.step % c.run.val_every == 0 or self.step == total:
                for name, score in self.validate().items():
                    self.logs.val(self.step, self.elapsed, name, score, 0.0)
                    log.info("step %d: %s PSNR-Y %.3f dB", self.step, name, score)
            if self.step % c.run.ckpt_every == 0 or self.step == total:
                self.save_checkpoint()
        if bar:
            bar.close()
        weights = self.out / "model.safetensors"
        info = {"config": c.source, "steps": self.step, "wall_seconds": round(self.elapsed, 1),
                "device": str(self.device), "torch": torch.__version__,
                "data": list(c.data.train), "degradation": "sequence"}  # fmt: skip
        save_weights(self.ema, weights, c, info)
        (self.out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
        self.logs.close()
        return weights
