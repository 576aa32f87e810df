"""Network architectures, by name, without importing torch until one is built.

Each entry knows how to compute its receptive field from its hyperparameters
(pure Python, used to size tile overlaps) and where its ``nn.Module`` lives.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ARCHS", "ArchSpec", "build_network", "get_arch", "receptive_field"]


@dataclass(frozen=True)
class ArchSpec:
    """Where an architecture is implemented and how far it sees."""

    name: str  #: the name used in configs, manifests and weight metadata
    module: str  #: module holding the ``nn.Module`` (imported lazily; needs torch)
    cls: str  #: class name inside ``module``
    receptive_field: Callable[[Mapping[str, Any]], int]  #: radius in input pixels


ARCHS: dict[str, ArchSpec] = {
    "plainsr": ArchSpec(
        name="plainsr",
        module="upscaler.archs.plainsr",
        cls="PlainSR",
        # head conv + hidden convs + tail conv, one pixel each.
        receptive_field=lambda p: int(p.get("blocks", 4)) + 2,
    ),
}


def get_arch(name: str) -> ArchSpec:
    """The spec of a named architecture; ``KeyError`` with the known names."""
    try:
        return ARCHS[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHS))}") from None


def receptive_field(arch: str, params: Mapping[str, Any]) -> int:
    """Receptive-field radius, in input pixels, of ``arch`` with ``params``."""
    return get_arch(arch).receptive_field(params)


def build_network(arch: str, scale: int, params: Mapping[str, Any]) -> Any:
    """Instantiate the ``nn.Module`` (imports torch)."""
    spec = get_arch(arch)
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    return cls(scale=scale, **dict(params))
