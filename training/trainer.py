"""The training loop: AdamW, warm-up plus cosine, EMA, exact resume, validation.

Outputs in ``run.out``: ``last.pt`` (the full state, to resume), ``model.safetensors``
(EMA weights with the metadata ``upscaler`` needs to load them),
``train.csv`` and ``val.csv`` (logs to plot), and a copy of the config.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from training.config import TrainConfig
from training.data import DeviceCrops, HRCrops, PairCrops, StepSampler, load_images, load_pairs
from training.degrade import MARGIN, make_pair
from training.distributed import setup
from training.logs import RunLog
from upscaler.archs import build_network, get_arch
from upscaler.degradations import DEGRADATIONS, degrade, modcrop
from upscaler.metrics import psnr, ssim
from upscaler.sysinfo import cpu_name

__all__ = ["Trainer", "load_initial_weights", "lr_at", "save_weights"]

log = logging.getLogger(__name__)


def lr_at(step: int, peak: float, floor: float, warmup: int, total: int) -> float:
    """Learning rate at ``step``: linear warm-up to ``peak``, then cosine down to ``floor``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def _loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "charbonnier":
        return torch.sqrt((pred - target) ** 2 + 1e-6).mean()
    if kind == "mse":  # what PSNR measures: a last fine-tuning stage
        return F.mse_loss(pred, target)
    return F.l1_loss(pred, target)


def _atomic_save(write, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.part")
    write(tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


#: Settings that decide what the network sees at each step: an exact resume needs them unchanged.
_RESUME_KEYS = (
    ("model",),
    ("data", "train"),
    ("data", "degradation"),
    ("data", "jitter"),
    ("model", "init"),
    ("data", "patch"),
    ("data", "batch"),
    ("run", "seed"),
)


def _resume_conflicts(saved: dict, current: dict) -> list[str]:
    def get(d: dict, path: tuple[str, ...]):
        for key in path:
            d = d.get(key, {}) if isinstance(d, dict) else {}
        return d

    return [".".join(p) for p in _RESUME_KEYS if get(saved, p) != get(current, p)]


def save_weights(net: torch.nn.Module, path: Path, config: TrainConfig, training: dict) -> None:
    """Write ``net``'s weights as safetensors with upscaler's metadata."""
    from safetensors.torch import save_file

    params = dict(config.model.params)
    if hasattr(net, "fused_state_dict"):  # re-parameterisable branches are folded before saving
        params = net.inference_params()
        state_dict = net.fused_state_dict()
    else:
        state_dict = net.state_dict()
    metadata = {
        "format": "pt",
        "name": config.name,
        "arch": config.model.arch,
        "scale": str(config.model.scale),
        "params": json.dumps(params, sort_keys=True),
        "degradation": config.data.degradation,
        "training": json.dumps(training, sort_keys=True),
    }
    state = {k: v.detach().float().cpu().contiguous() for k, v in state_dict.items()}
    _atomic_save(lambda p: save_file(state, str(p), metadata=metadata), path)


def load_initial_weights(net: torch.nn.Module, config: TrainConfig) -> None:
    """Start ``net`` from a built-in model or a ``.safetensors`` file (fine-tuning)."""
    from safetensors.torch import load_file

    from upscaler.models import ModelError, get_model

    try:
        model = get_model(config.model.init)
    except ModelError as exc:
        raise ValueError(f"model.init: {exc}") from None
    if (model.arch, model.scale) != (config.model.arch, config.model.scale):
        raise ValueError(
            f"model.init: {model.name} is {model.arch} x{model.scale}, this config trains "
            f"{config.model.arch} x{config.model.scale}"
        )
    theirs = build_network(model.arch, model.scale, model.params)
    ours_params = net.inference_params() if hasattr(net, "inference_params") else dict(config.model.params)
    theirs_params = theirs.inference_params() if hasattr(theirs, "inference_params") else dict(model.params)
    spec = get_arch(model.arch)
    grows = (("blocks",) if spec.deepens else ()) + spec.widens
    free = spec.retunable + tuple(k for k in grows if ours_params.get(k, 0) > theirs_params.get(k, 0))
    mismatch = [
        f"{k} {theirs_params.get(k)!r} (this config: {ours_params.get(k)!r})"
        for k in sorted(set(ours_params) | set(theirs_params))
        if ours_params.get(k) != theirs_params.get(k) and k not in free
    ]
    if mismatch:
        raise ValueError(f"model.init: {model.name} has another network: {'; '.join(mismatch)}")
    state = load_file(str(model.weights.verified()))
    loader = getattr(net, "load_plain_state_dict", net.load_state_dict)
    loader({k: v.to(next(net.parameters()).device) for k, v in state.items()})
    log.info("starting from %s (%s)", model.name, model.weights.path)


@dataclass
class ValImage:
    """A validation pair, made once by the evaluation protocol."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


class Trainer:
    """Trains one config; ``run()`` resumes from ``last.pt`` when it exists."""

    def __init__(
        self, config: TrainConfig, *, data_root: str | None = None, restart: bool = False, progress: bool = True
    ) -> None:
        self.config = config
        self.out = Path(config.run.out)
        self.data_root = data_root
        self.progress = progress
        missing = [
            str(d) for d in config.data_dirs("train", data_root) + config.data_dirs("val", data_root) if not d.is_dir()
        ]
        if missing:
            raise FileNotFoundError(f"data folder(s) not found: {', '.join(missing)} (set data.root or --data-root)")
        self.dist = setup(config.run.device)
        self.device = self._pick_device(self.dist.device(config.run.device))
        if config.run.threads:
            torch.set_num_threads(config.run.threads)
        torch.manual_seed(config.run.seed)
        scale = config.model.scale
        # On CUDA: channels-last activations and cuDNN's autotuned kernels (fixed patch shapes)
        self.memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        torch.backends.cudnn.benchmark = self.device.type == "cuda"
        self.net = build_network(config.model.arch, scale, config.model.params).to(self.device)
        if config.model.init:
            load_initial_weights(self.net, config)
        self.net = self.net.to(memory_format=self.memory_format)
        self.ema = build_network(config.model.arch, scale, config.model.params).to(self.device)
        self.ema = self.ema.to(memory_format=self.memory_format)
        self.ema.load_state_dict(self.net.state_dict())
        self.ema.requires_grad_(False)
        self.optim = torch.optim.AdamW(
            self.net.parameters(),
            lr=config.optim.lr,
            betas=config.optim.betas,
            weight_decay=config.optim.weight_decay,
        )
        self.model = self.net  # what the step calls: DDP's wrapper under torchrun
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids)
        self.step = 0
        self.elapsed = 0.0
        self._mid_step = False
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            if restart:
                for name in ("last.pt", "train.csv", "val.csv", "model.safetensors", "ddp.json"):
                    (self.out / name).unlink(missing_ok=True)
                shutil.rmtree(self.out / "tb", ignore_errors=True)
        self.dist.barrier()
        self.logs = RunLog(self.out, config.run.tensorboard) if self.dist.main else None
        self._resume()

    @staticmethod
    def _pick_device(name: str) -> torch.device:
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {name} requested but CUDA is not available")
        return device

    # -- state -------------------------------------------------------------
    def _resume(self) -> None:
        path = self.out / "last.pt"
        if not path.exists():
            return
        state = torch.load(path, map_location=self.device, weights_only=False)
        changed = _resume_conflicts(state["config"], self.config.to_dict())
        if changed:
            raise RuntimeError(
                f"{path} was trained with other {', '.join(changed)}; an exact resume needs the same "
                "(use --restart to start over)"
            )
        self.net.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optim.load_state_dict(state["optim"])
        torch.set_rng_state(state["rng"].cpu())  # map_location may have moved it to the GPU
        self.step, self.elapsed = state["step"], state["elapsed"]
        if self.logs:
            self.logs.trim(self.step)
        log.info("resuming %s from step %d", self.config.name, self.step)

    def save_checkpoint(self) -> None:
        """Write ``last.pt`` atomically (the main process; replicas hold the same state)."""
        if not self.dist.main:
            return
        state = {
            "step": self.step,
            "elapsed": self.elapsed,
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "optim": self.optim.state_dict(),
            "rng": torch.get_rng_state(),
            "config": self.config.to_dict(),
        }
        _atomic_save(lambda p: torch.save(state, p), self.out / "last.pt")

    def training_info(self) -> dict:
        """What goes into the weights' metadata and the model descriptor."""
        return {
            "config": self.config.source,
            "steps": self.step,
            "wall_seconds": round(self.elapsed, 1),
            "device": self._device_name(),
            "data": list(self.config.data.train),
            "degradation": self.config.data.degradation,
            "init": self.config.model.init,
            "processes": self.dist.world,
            "torch": torch.__version__,
        }

    def _device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({cpu_name()}, {torch.get_num_threads()} threads)" + (
            f" x {self.dist.world} processes" if self.dist.enabled else ""
        )

    # -- data --------------------------------------------------------------
    @property
    def paired(self) -> bool:
        """Whether the data brings its own low-resolution frames (``lr/`` and ``hr/`` folders)."""
        return self.config.data.degradation == "paired"

    def _batches(self):
        """Each step's batch, from ``self.step`` on: uint8 crops (or pairs), on the host or the device."""
        c = self.config
        if not c.data.on_device:
            yield from self._loader()
            return
        folders = c.data_dirs("train", self.data_root)
        crops = DeviceCrops(load_images(folders), c.data.patch * c.model.scale, MARGIN * c.model.scale,
                            c.run.seed, str(self.device))  # fmt: skip
        for step in range(self.step, c.optim.steps):
            yield crops.batch(step, c.data.batch // self.dist.world, self.dist.rank)

    def _loader(self) -> DataLoader:
        c = self.config
        folders = c.data_dirs("train", self.data_root)
        if self.paired:
            dataset = PairCrops(load_pairs(folders, c.model.scale), c.data.patch, c.model.scale, seed=c.run.seed)
        else:
            dataset = HRCrops(load_images(folders), c.data.patch * c.model.scale, MARGIN * c.model.scale, c.run.seed)
        cuda = self.device.type == "cuda"
        return DataLoader(
            dataset,
            batch_size=c.data.batch // self.dist.world,
            sampler=StepSampler(c.data.batch, self.step, c.optim.steps, self.dist.rank, self.dist.world),
            num_workers=c.data.workers,
            pin_memory=cuda,
            persistent_workers=c.data.workers > 0,
            prefetch_factor=4 if c.data.workers > 0 else None,
            drop_last=True,
        )

    def _val_sets(self) -> dict[str, list[ValImage]]:
        """Validation pairs: real ``lr/``/``hr/`` pairs for paired runs, else the evaluation protocol.

        ``video`` is random, so its models are validated on the bicubic protocol.
        """
        if not self.dist.main:
            return {}
        scale, sets = self.config.model.scale, {}
        kind = self.config.data.degradation if self.config.data.degradation in DEGRADATIONS else "bicubic"
        for folder in self.config.data_dirs("val", self.data_root):
            if self.paired:
                sets[folder.name] = [ValImage(name, lr, hr) for lr, hr, name in load_pairs([folder], scale)]
            else:
                sets[folder.name] = [
                    ValImage(folder.name, degrade(hr, scale, kind), hr)
                    for hr in (modcrop(im, scale) for im in load_images([folder]))
                ]
        return sets

    # -- loop --------------------------------------------------------------
    def _update_ema(self) -> None:
        decay = min(self.config.optim.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.net.parameters()), 1.0 - decay)
            for e, b in zip(self.ema.buffers(), self.net.buffers()):
                e.copy_(b)

    def _pair(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        if self.paired:
            lr, hr = (t.to(self.device, non_blocking=True).float().div(255) for t in batch)
            return lr, hr
        # Seeded by step and process: a resumed run draws what an uninterrupted one would.
        generator = torch.Generator().manual_seed((c.run.seed * 1_000_003 + self.step) * 64 + self.dist.rank)
        crops = batch.to(self.device, non_blocking=True)
        return make_pair(crops, c.model.scale, c.data.degradation, jitter=c.data.jitter, generator=generator)

    def _train_step(self, batch) -> torch.Tensor:
        c = self.config
        self._mid_step = True  # an interrupt from here to the end leaves a half-updated state
        lr_value = lr_at(self.step, c.optim.lr, c.optim.min_lr, c.optim.warmup_steps, c.optim.steps)
        for group in self.optim.param_groups:
            group["lr"] = lr_value
        lr, hr = self._pair(batch)
        amp = c.run.amp and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            pred = self.model(lr.contiguous(memory_format=self.memory_format))
        loss = _loss(pred.float(), hr, c.optim.loss)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        if c.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.optim.grad_clip)
        self.optim.step()
        if c.optim.ema > 0:
            self._update_ema()
        else:
            self.ema.load_state_dict(self.net.state_dict())
        self.step += 1
        self._mid_step = False
        return loss.detach()  # read at the next log row: no wait for the device on every step

    @torch.no_grad()
    def validate(self, sets: dict[str, list[ValImage]]) -> dict[str, tuple[float, float]]:
        """Mean (PSNR, SSIM) on Y per validation folder, with the EMA weights."""
        scale, results = self.config.model.scale, {}
        self.ema.eval()
        for name, pairs in sets.items():
            scores = []
            for pair in pairs:
                x = torch.from_numpy(pair.lr.transpose(2, 0, 1).copy()).float().div(255)[None].to(self.device)
                y = self.ema(x)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
                scores.append((psnr(y, pair.hr, border=scale), ssim(y, pair.hr, border=scale)))
            results[name] = tuple(float(v) for v in np.mean(scores, axis=0))
        return results

    def _validate_and_export(self, sets) -> str:
        if not self.dist.main:
            return ""
        results = self.validate(sets)
        for name, (p, s) in results.items():
            self.logs.val(self.step, self.elapsed, name, p, s)
        save_weights(self.ema, self.out / "model.safetensors", self.config, self.training_info())
        summary = ", ".join(f"{n} {p:.3f} dB / {s:.4f}" for n, (p, s) in results.items())
        log.info("step %d: %s", self.step, summary or "no validation folders")
        return summary

    def _iteration(self, batch, bar, sets, losses: list[torch.Tensor]) -> None:
        c = self.config
        losses.append(self._train_step(batch))
        bar.update(1)
        if self.step % c.run.log_every == 0:
            now = time.perf_counter()
            rate = len(losses) * c.data.batch / (now - self._last_log)
            lr_value = self.optim.param_groups[0]["lr"]
            loss = self.dist.mean(float(torch.stack(losses).mean()))
            if self.logs:
                self.logs.train(self.step, self.elapsed, lr_value, loss, rate)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr_value:.1e}")
            losses.clear()
            self._last_log = now
        if self.step % c.run.val_every == 0 or self.step == c.optim.steps:
            bar.set_postfix_str(self._validate_and_export(sets))
        if self.step % c.run.ckpt_every == 0 or self.step == c.optim.steps:
            self.save_checkpoint()

    def _check_replicas(self) -> None:
        """Under torchrun: every process must end with the same weights; ``ddp.json`` records it."""
        if not self.dist.enabled:
            return
        digests = self.dist.weight_digests(self.net)
        if self.dist.main:
            record = {"world_size": self.dist.world, "step": self.step, "digests": digests}
            (self.out / "ddp.json").write_text(json.dumps(record, indent=2) + "\n")
        if len(set(digests)) != 1:
            raise RuntimeError(f"data-parallel replicas disagree at step {self.step}: {digests}")

    def run(self, stop_at: int | None = None) -> Path:
        """Train to ``optim.steps`` (or stop early at ``stop_at``, as an interruption would)."""
        from tqdm import tqdm

        c = self.config
        copy = self.out / "config.toml"
        if self.dist.main and c.source and not (copy.exists() and copy.samefile(c.source)):
            shutil.copyfile(c.source, copy)
        sets = self._val_sets()
        total = c.optim.steps if stop_at is None else min(stop_at, c.optim.steps)
        bar = tqdm(
            total=c.optim.steps,
            initial=self.step,
            desc=c.name,
            disable=not (self.progress and self.dist.main),
            dynamic_ncols=True,
            smoothing=0.05,
        )
        self.net.train()
        losses: list[torch.Tensor] = []
        self._last_log = time.perf_counter()
        started, base_elapsed = time.perf_counter(), self.elapsed
        try:
            for batch in self._batches():
                if self.step >= total:
                    break
                self._iteration(batch, bar, sets, losses)
                self.elapsed = base_elapsed + time.perf_counter() - started
        except KeyboardInterrupt:
            if self._mid_step:  # weights, optimiser and EMA disagree: keep the last checkpoint
                log.warning("interrupted during step %d; run again to resume from the last checkpoint", self.step)
            else:
                self.save_checkpoint()
                log.warning("interrupted at step %d; checkpoint saved, run again to resume", self.step)
            raise
        bar.close()
        if self.step == c.optim.steps and self.dist.main and not (self.out / "model.safetensors").exists():
            self._validate_and_export(sets)
        self.save_checkpoint()
        self._check_replicas()
        self.dist.barrier()
        if self.logs:
            self.logs.close()
        self.dist.close()
        return self.out / "model.safetensors"
