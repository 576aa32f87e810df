"""The built-in models: one manifest shipped with the package.

``get_model`` resolves a name from the manifest, an alias (``x4``, ``x2``,
``default``) or a path to a ``.safetensors`` file written by
``upscaler train`` (with an ``.onnx`` of the same stem beside it, if any).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from upscaler.models.descriptor import (
    ModelDescriptor,
    ModelError,
    ModelFile,
    descriptor_from_safetensors,
    read_safetensors_metadata,
    sha256_file,
)

__all__ = [
    "MANIFEST_PATH",
    "WEIGHTS_DIR",
    "ModelDescriptor",
    "ModelError",
    "ModelFile",
    "default_model",
    "get_model",
    "list_models",
    "load_manifest",
    "load_partners",
    "read_safetensors_metadata",
    "sha256_file",
]

#: The manifest of built-in models.
MANIFEST_PATH = Path(__file__).with_name("manifest.json")
#: Where the built-in weights and ONNX graphs live (manifest paths are relative to it).
WEIGHTS_DIR = Path(__file__).with_name("weights")


@lru_cache(maxsize=1)
def load_manifest() -> tuple[dict[str, ModelDescriptor], dict[str, str]]:
    """``(models by name, aliases)`` from the shipped manifest."""
    raw = json.loads(MANIFEST_PATH.read_text())
    models = {r["name"]: ModelDescriptor.from_dict(r, WEIGHTS_DIR) for r in raw["models"]}
    aliases = dict(raw.get("aliases", {}))
    for alias, target in aliases.items():
        if target not in models:
            raise ModelError(f"manifest alias {alias!r} points to unknown model {target!r}")
    return models, aliases


@lru_cache(maxsize=1)
def load_partners() -> dict[str, str]:
    """The manifest's ``clean_partners``: for a model trained for compressed sources, the model to run on a
    clean one (``upscaler.sources``)."""
    raw = json.loads(MANIFEST_PATH.read_text())
    partners = dict(raw.get("clean_partners", {}))
    models = load_manifest()[0]
    for model, partner in partners.items():
        if model not in models or partner not in models:
            raise ModelError(f"manifest clean partner {model!r} -> {partner!r} names an unknown model")
        if models[model].scale != models[partner].scale:
            raise ModelError(f"manifest clean partner {model!r} -> {partner!r}: the scales differ")
    return partners


def list_models(kind: str | None = None) -> list[ModelDescriptor]:
    """Every built-in model, in manifest order; ``kind`` ``frame`` or ``temporal`` keeps only those."""
    if kind not in (None, "frame", "temporal"):
        raise ValueError(f"kind must be frame or temporal, got {kind!r}")
    models = list(load_manifest()[0].values())
    return models if kind is None else [m for m in models if m.temporal == (kind == "temporal")]


def default_model() -> ModelDescriptor:
    """The model used when none is named."""
    return get_model("default")


def get_model(name: str | Path | ModelDescriptor) -> ModelDescriptor:
    """Resolve a model name, alias or weights path to its descriptor."""
    if isinstance(name, ModelDescriptor):
        return name
    models, aliases = load_manifest()
    key = str(name)
    key = aliases.get(key, key)
    if key in models:
        return models[key]
    path = Path(name)
    if path.suffix == ".safetensors" and path.is_file():
        return descriptor_from_safetensors(path)
    known = ", ".join(sorted([*models, *aliases]))
    raise ModelError(f"unknown model {str(name)!r}; built-in models: {known} (or a path to a .safetensors file)")
