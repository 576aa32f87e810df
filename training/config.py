"""Training configuration: one TOML file per experiment (and per shipped model)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from training.degrade import TRAIN_DEGRADATIONS
from upscaler.archs import build_network

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "load_config",
    "validate_config",
]


class ConfigError(ValueError):
    """A configuration file is missing, malformed or inconsistent."""


@dataclass
class ModelConfig:
    """The network to train."""

    arch: str = "plainsr"  #: architecture name (``upscaler.archs``)
    scale: int = 4  #: upscaling factor
    params: dict[str, Any] = field(default_factory=dict)  #: architecture hyperparameters
    init: str = ""  #: start from these weights: a built-in model name or a .safetensors path (fine-tuning)
    teacher: str = ""  #: sequence: a trained model (same arch and scale) distilled from: ``optim.distil_weight``


@dataclass
class DataConfig:
    """Where pairs come from and how they are cut."""

    root: str = "../shared/data"  #: base for relative folders (relative to the working directory)
    train: list[str] = field(default_factory=list)  #: folders of high-resolution images
    val: list[str] = field(default_factory=list)  #: folders validated on (full images)
    degradation: str = "bicubic"  #: how low-resolution inputs are made: bicubic, render, video or paired
    jitter: int = 0  #: render: sub-pixel phase drawn from 0..jitter high-resolution pixels per axis
    patch: int = 48  #: low-resolution patch edge
    frames: int = 8  #: sequence: frames per sequence trained through (truncated back-propagation)
    warmup_frames: int = 0  #: sequence: frames run first without gradients, so history has built up
    early: float = 0.0  #: sequence: share of steps trained on the first ``frames`` frames, no warm-up
    still: float = 0.0  #: sequence: share of sequences whose camera does not move (a static shot)
    unjittered: float = 0.0  #: sequence: share rendered without jitter (video: every frame samples alike)
    motion_noise: float = 0.0  #: sequence: std (low-res pixels) of smooth noise on unjittered ones' motion
    slow: float = 0.0  #: sequence: share whose camera and layer move at most ``slow_speed`` per axis
    slow_speed: float = 1.2  #: sequence: the slow shots' speed bound, high-resolution pixels per frame
    fade: float = 0.0  #: sequence: share that fade in from black over 2 to 12 frames
    batch: int = 16  #: patches per step
    workers: int = 0  #: data-loading processes (0: in the training process)
    on_device: bool = False  #: hold the images on the training device and cut crops there (GPUs)


@dataclass
class OptimConfig:
    """Optimiser, schedule and loss."""

    lr: float = 1e-3  #: peak learning rate (AdamW)
    min_lr: float = 1e-6  #: learning rate at the end of the cosine
    weight_decay: float = 0.0  #: AdamW decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.99)  #: AdamW betas
    warmup_steps: int = 500  #: linear warm-up before the cosine
    steps: int = 100_000  #: total optimiser steps
    ema: float = 0.999  #: EMA decay of the weights validated and shipped (0: off)
    loss: str = "l1"  #: ``l1``, ``charbonnier`` or ``mse``
    grad_clip: float = 0.0  #: max gradient norm (0: off)
    temporal_weight: float = 0.0  #: sequence: weight of the temporal-stability loss
    distil_weight: float = 0.0  #: sequence: weight of the L1 to ``model.teacher``'s step from the same state


@dataclass
class RunConfig:
    """Bookkeeping: where outputs go and how often things happen."""

    out: str = "runs/experiment"  #: output folder (checkpoints, logs, weights)
    seed: int = 0  #: seeds weights and the data order
    device: str = "auto"  #: ``auto``, ``cpu``, ``cuda``, ``cuda:N``
    threads: int = 0  #: CPU threads for torch (0: torch's default)
    amp: bool = True  #: mixed precision on CUDA (ignored on CPU)
    tensorboard: bool = True  #: also log to TensorBoard (``<out>/tb``) when it is installed
    log_every: int = 100  #: steps between training-log rows
    val_every: int = 2000  #: steps between validations
    ckpt_every: int = 1000  #: steps between checkpoints


@dataclass
class TrainConfig:
    """One training experiment."""

    name: str  #: model name written into the weights
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    source: str = ""  #: the file it was loaded from

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for checkpoints and metadata)."""
        return asdict(self)

    def data_dirs(self, which: str, root: str | None = None) -> list[Path]:
        """Absolute ``train`` or ``val`` folders, resolved against the data root."""
        base = Path(root or self.data.root)
        return [(base / d).resolve() for d in getattr(self.data, which)]


def _coerce(value: Any, expected: type, where: str) -> Any:
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if expected is list and isinstance(value, list):
        return value
    if isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
        return value
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a table",
        list: "a list",
        tuple: "a list",
    }
    raise ConfigError(f"{where} must be {names.get(expected, expected.__name__)}, got {value!r}")


def _build(cls, table: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in [{where}]: {', '.join(sorted(unknown))}")
    try:
        obj = cls(**table)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from None
    for f in fields(cls):  # check each value against its default's type
        expected = type(getattr(cls(), f.name))
        value = getattr(obj, f.name)
        setattr(obj, f.name, _coerce(value, expected, f"[{where}] {f.name}"))
    return obj


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a TOML training config."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    sections = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "run": RunConfig}
    unknown = set(raw) - set(sections) - {"name"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ConfigError(f"{path}: a top-level 'name' is required")
    parts = {key: _build(cls, raw.get(key, {}), key) for key, cls in sections.items()}
    config = TrainConfig(name=raw["name"], source=str(path), **parts)
    validate_config(config, path)
    return config


def validate_config(c: TrainConfig, where: str | Path = "") -> None:
    """Check value ranges and names; ``ConfigError`` naming every problem."""
    problems = []
    if c.model.scale not in (2, 3, 4, 8):
        problems.append(f"model.scale must be 2, 3, 4 or 8, got {c.model.scale}")
    problems += _model_problems(c)
    if not c.data.train:
        problems.append("data.train lists no folders")
    if c.data.degradation not in TRAIN_DEGRADATIONS:
        problems.append(f"data.degradation must be one of {', '.join(TRAIN_DEGRADATIONS)}, got {c.data.degradation!r}")
    if not 0 <= c.data.jitter < c.model.scale:
        problems.append(f"data.jitter must be in [0, {c.model.scale - 1}] (HR pixels), got {c.data.jitter}")
    shares = ("early", "still", "unjittered", "slow", "fade")
    if not all(0 <= getattr(c.data, k) <= 1 for k in shares):
        problems.append(f"data.{', data.'.join(shares)} are shares: each in [0, 1]")
    if c.data.patch < 4 or c.data.batch < 1 or c.data.workers < 0:
        problems.append("data.patch >= 4, data.batch >= 1 and data.workers >= 0 are required")
    if c.optim.steps < 1 or not 0 <= c.optim.warmup_steps < c.optim.steps:
        problems.append("optim.steps must be positive and exceed optim.warmup_steps")
    if not (c.optim.lr > 0 and 0 <= c.optim.min_lr <= c.optim.lr):
        problems.append("optim.lr must be positive and at least optim.min_lr")
    if len(c.optim.betas) != 2 or not all(0 <= b < 1 for b in c.optim.betas):
        problems.append(f"optim.betas must be two numbers in [0, 1), got {list(c.optim.betas)}")
    if c.optim.weight_decay < 0 or c.optim.grad_clip < 0:
        problems.append("optim.weight_decay and optim.grad_clip must not be negative")
    if not 0 <= c.optim.ema < 1:
        problems.append("optim.ema must be in [0, 1)")
    if c.optim.loss not in ("l1", "charbonnier", "mse"):
        problems.append(f"optim.loss must be l1, charbonnier or mse, got {c.optim.loss!r}")
    if c.data.on_device and c.data.degradation not in ("bicubic", "render", "video"):
        problems.append(f"data.on_device cuts high-resolution crops: not for the {c.data.degradation!r} degradation")
    if c.optim.distil_weight < 0 or (c.optim.distil_weight > 0) != bool(c.model.teacher):
        problems.append("optim.distil_weight must be positive with model.teacher, and 0 without it")
    if c.model.teacher and c.data.degradation != "sequence":
        problems.append("model.teacher distils temporal steps: data.degradation must be sequence")
    if c.run.threads < 0:
        problems.append("run.threads must not be negative")
    for key in ("log_every", "val_every", "ckpt_every"):
        if getattr(c.run, key) < 1:
            problems.append(f"run.{key} must be positive")
    if problems:
        raise ConfigError((f"{where}: " if where else "") + "; ".join(problems))


def _model_problems(c: TrainConfig) -> list[str]:
    try:
        build_network(c.model.arch, c.model.scale, c.model.params)
    except KeyError as exc:
        return [f"model.arch: {exc.args[0]}"]
    except (TypeError, ValueError) as exc:
        return [f"model.params: {exc}"]
    return []
