"""Model descriptors: everything the runtime needs to know about a model."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upscaler.archs import DISPLAY_FILTERS, get_arch, macs_per_pixel, receptive_field

__all__ = [
    "ModelDescriptor",
    "ModelError",
    "ModelFile",
    "descriptor_from_safetensors",
    "read_safetensors_metadata",
    "sha256_file",
]


class ModelError(ValueError):
    """A model is unknown, or its files are missing or do not match the manifest."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelFile:
    """A file a model needs, with the checksum it must have."""

    path: Path  #: absolute path
    sha256: str | None = None  #: expected hex digest; ``None`` skips the check

    def verified(self) -> Path:
        """The path, after checking it exists and matches its checksum."""
        if not self.path.is_file():
            raise ModelError(f"model file missing: {self.path}")
        if self.sha256 and sha256_file(self.path) != self.sha256:
            raise ModelError(f"model file does not match its sha256 (corrupt or replaced): {self.path}")
        return self.path


@dataclass(frozen=True)
class ModelDescriptor:
    """A model: architecture, scale, files and measured quality."""

    name: str  #: unique name, as given to ``--model``
    arch: str  #: architecture name (see ``upscaler.archs``)
    scale: int  #: output size / input size
    params: Mapping[str, Any] = field(default_factory=dict)  #: architecture hyperparameters
    description: str = ""  #: one line for humans
    channels: int = 3  #: colour channels the network takes and returns (RGB)
    degradation: str = "bicubic"  #: the low-resolution process it was trained to invert
    size_multiple: int = 1  #: input height and width must be multiples of this
    weights: ModelFile | None = None  #: safetensors weights (PyTorch engines)
    onnx: ModelFile | None = None  #: FP32 ONNX graph (ONNX Runtime, TensorRT)
    graphs: Mapping[str, ModelFile] = field(default_factory=dict)  #: other precisions' graphs: fp16, int8 (QDQ)
    quality: Mapping[str, Any] = field(default_factory=dict)  #: measured PSNR/SSIM per dataset (FP32)
    precision_reports: Mapping[str, Any] = field(default_factory=dict)  #: per extra precision: quality, speed
    training: Mapping[str, Any] = field(default_factory=dict)  #: how the weights were made

    @property
    def temporal(self) -> bool:
        """A temporal model: it takes jitter, motion and history (``TemporalUpscaler``), not single frames."""
        return get_arch(self.arch).temporal

    @property
    def state_channels(self) -> int:
        """A temporal model's high-resolution state planes (the first three are its output)."""
        return get_arch(self.arch).state_channels + self.display_planes

    @property
    def display_planes(self) -> int:
        """Leading state planes a temporal model writes and never reads back (its shown colour, where that
        is not its history's): the step reprojects and reads the planes after them."""
        return get_arch(self.arch).display_planes(self.params)

    @property
    def depth(self) -> bool:
        """A temporal model that takes the caller's depth (its graphs have a ``depth`` input)."""
        return get_arch(self.arch).depth

    @property
    def reproject(self) -> str:
        """How a temporal model resamples its state between frames (``linear`` or ``cubic``)."""
        return get_arch(self.arch).reproject

    @property
    def inputs(self) -> str:
        """What the model takes, in a line."""
        if self.temporal:
            return (
                "per frame: H x W x 3 uint8 RGB, jitter (jx, jy) in [-0.5, 0.5) LR pixels, motion H x W x 2 float32 "
                "LR pixels (previous = current + motion; or estimated), reset; the history stays in TemporalUpscaler"
            )
        return "an image of any size: RGB, RGBA or grey, 8 or 16 bits"

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precisions it ships a graph for (FP32 always; FP16 and INT8 when exported)."""
        return ("fp32", *(p for p in ("fp16", "int8") if p in self.graphs))

    def graph(self, precision: str) -> ModelFile | None:
        """The ONNX graph for ``precision`` (``fp32``, ``fp16``, ``int8``), or None if not shipped."""
        return self.onnx if precision == "fp32" else self.graphs.get(precision)

    @property
    def receptive_field(self) -> int:
        """Radius in input pixels that one output pixel depends on."""
        return receptive_field(self.arch, self.params)

    @property
    def macs_per_pixel(self) -> int:
        """Multiply-accumulates per input pixel: the compute cost, independent of hardware."""
        return macs_per_pixel(self.arch, self.params, self.scale)

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        """A JSON-ready record (file paths relative to ``relative_to`` if given)."""

        def file_entry(f: ModelFile | None) -> dict[str, Any] | None:
            if f is None:
                return None
            path = f.path.relative_to(relative_to) if relative_to else f.path
            return {"path": path.as_posix(), "sha256": f.sha256}

        return {
            "name": self.name,
            "description": self.description,
            "arch": self.arch,
            "params": dict(self.params),
            "scale": self.scale,
            "channels": self.channels,
            "degradation": self.degradation,
            "receptive_field": self.receptive_field,
            "macs_per_pixel": self.macs_per_pixel,
            "size_multiple": self.size_multiple,
            "precisions": list(self.precisions),
            "inputs": self.inputs,
            "weights": file_entry(self.weights),
            "onnx": file_entry(self.onnx),
            "graphs": {k: file_entry(v) for k, v in self.graphs.items()},
            "quality": dict(self.quality),
            "precision_reports": dict(self.precision_reports),
            "training": dict(self.training),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], root: Path) -> ModelDescriptor:
        """Build from a manifest record; file paths are resolved against ``root``."""

        def file_of(entry: Mapping[str, Any] | None) -> ModelFile | None:
            if not entry:
                return None
            return ModelFile(path=(root / entry["path"]).resolve(), sha256=entry.get("sha256"))

        try:
            return cls(
                name=record["name"],
                arch=record["arch"],
                scale=int(record["scale"]),
                params=dict(record.get("params", {})),
                description=record.get("description", ""),
                channels=int(record.get("channels", 3)),
                degradation=record.get("degradation", "bicubic"),
                size_multiple=int(record.get("size_multiple", 1)),
                weights=file_of(record.get("weights")),
                onnx=file_of(record.get("onnx")),
                graphs={k: file_of(v) for k, v in record.get("graphs", {}).items() if v},
                quality=dict(record.get("quality", {})),
                precision_reports=dict(record.get("precision_reports", {})),
                training=dict(record.get("training", {})),
            )
        except KeyError as exc:
            raise ModelError(f"model record lacks the field {exc.args[0]!r}") from None


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read without any ML library."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(fh.read(size))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    return dict(header.get("__metadata__") or {})


def descriptor_from_safetensors(path: Path) -> ModelDescriptor:
    """Describe a weights file written by ``upscaler train`` from its own metadata.

    An ONNX graph with the same stem beside it is used when present (and, for
    a temporal model, ``<stem>.folded.onnx`` and its display filters' ``<stem>.display-<filter>.onnx`` and
    ``<stem>.detail-<filter>.onnx``).
    """
    path = Path(path).resolve()
    meta = read_safetensors_metadata(path)
    if "arch" not in meta or "scale" not in meta:
        raise ModelError(f"{path}: weights carry no upscaler metadata (arch, scale)")
    onnx_path = path.with_suffix(".onnx")
    cpu_graphs = temporal_cpu_graphs(path.with_suffix(".folded.onnx"))  # export.temporal.export_temporal
    return ModelDescriptor(
        name=meta.get("name", path.stem),
        arch=meta["arch"],
        scale=int(meta["scale"]),
        params=json.loads(meta.get("params", "{}")),
        description=f"weights from {path}",
        degradation=meta.get("degradation", "bicubic"),
        weights=ModelFile(path),
        onnx=ModelFile(onnx_path) if onnx_path.is_file() else None,
        graphs={kind: ModelFile(p) for kind, p in cpu_graphs.items()},
        training=json.loads(meta.get("training", "{}")),
    )


def display_graph_path(folded: Path, name: str, part: str = "display") -> Path:
    """Where display filter ``name`` (``part`` ``display``, or ``detail``: its luma detail filter) of the model
    whose folded graph is ``folded`` lies."""
    return Path(folded).with_name(Path(folded).name.removesuffix(".folded.onnx") + f".{part}-{name}.onnx")


def temporal_cpu_graphs(folded: Path) -> dict[str, Path]:
    """The CPU graphs of a temporal model whose folded graph is (or would be) ``folded``, by kind (``folded``,
    ``display-<filter>``, ``detail-<filter>``): those that exist."""
    paths = {"folded": Path(folded)} | {
        f"{part}-{f}": display_graph_path(folded, f, part) for part in ("display", "detail") for f in DISPLAY_FILTERS
    }
    return {kind: p for kind, p in paths.items() if p.is_file()}
