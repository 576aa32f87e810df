"""Network architectures, by name, without importing torch until one is built.

Each entry knows how to compute its receptive field from its hyperparameters
(pure Python, used to size tile overlaps) and where its ``nn.Module`` lives.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ARCHS", "DISPLAY_FILTERS", "GAP_FLOOR", "LEAN_FLOOR", "LUMA", "NETWORK_OUTPUTS", "ArchSpec", "build_network",
    "get_arch", "macs_per_pixel", "receptive_field",
]  # fmt: skip


#: An accumulating model's display filters (``AccumSR``'s, in the order of its output channels); each that is
#: not identity ships as a CPU graph of its own, ``display-<filter>``, beside the folded one.
DISPLAY_FILTERS = ("moving", "still", "unjittered")

#: Rec. 601 luma weights (summing to 1): what an accumulating model's range test compares (``AccumSR``'s
#: ``clip``) and what its luma detail filters read (``detail``; the CPU engine's ``runtime.accum_cpu.luma``).
#: PSNR-Y's luma is 16/255 plus 219/255 of this one.
LUMA = (0.299, 0.587, 0.114)

#: The least lean an accumulating model keeps on its jitter-aware upsample (``AccumSR.weigh``, and the CPU
#: engine's fused mean, ``runtime.accum_cpu``): the weighted mean never divides by zero.
LEAN_FLOOR = 1e-3

#: Added to the farther depth in an accumulating model's depth gap (``AccumSR.depth_gap``, and the CPU engine's
#: ``runtime.accum_cpu.depth_gap``): no division by zero where neither frame has depth.
GAP_FLOOR = 1e-6

#: An accumulating model's folded (CPU) graph's outputs, in order (``AccumSR.tail_logits``, ``splat_gain``,
#: ``mix_kernels``): what the CPU engine reads (``runtime.temporal_ort_cpu``; ``export.temporal`` writes them).
NETWORK_OUTPUTS = ("tail", "splat_gain", "kernels")


@dataclass(frozen=True)
class ArchSpec:
    """Where an architecture is implemented and how far it sees."""

    name: str  #: the name used in configs, manifests and weight metadata
    module: str  #: module holding the ``nn.Module`` (imported lazily; needs torch)
    cls: str  #: class name inside ``module``
    receptive_field: Callable[[Mapping[str, Any]], int]  #: radius in input pixels
    macs: Callable[[Mapping[str, Any], int], int]  #: multiply-adds per input pixel (params, scale)
    temporal: bool = False  #: a temporal step (frame, jitter, motion, state, reset), not a single-frame model
    state_channels: int = 3  #: high-resolution planes a temporal step carries (the first three: the output)
    reproject: str = "linear"  #: how a temporal step resamples its state: ``linear`` or ``cubic``
    depth: bool = False  #: a temporal step that takes the caller's depth (zeros when there is none)
    retunable: tuple[str, ...] = ()  #: hyperparameters a fine-tuning stage may change (no weight depends on them)
    deepens: bool = False  #: a fine-tuning stage may add hidden layers (``blocks``), which start as identity
    #: hyperparameters a fine-tuning stage may make larger (the network starts computing what it did)
    widens: tuple[str, ...] = ()
    #: leading state planes a temporal step writes and never reads (the shown colour, when it differs from the
    #: history's): engines neither reproject nor feed them back; they count in ``state_channels`` of a model
    display_planes: Callable[[Mapping[str, Any]], int] = lambda p: 0


def _plainsr_macs(p: Mapping[str, Any], scale: int) -> int:
    c, b, tail = int(p.get("channels", 32)), int(p.get("blocks", 4)), int(p.get("tail", 3))
    out = 3 * scale * scale
    base = 3 * 9 * scale * scale if p.get("base", "bilinear") != "none" else 0  # one input channel per output
    return 3 * c * 9 + b * c * c * 9 + c * out * tail * tail + base


def _temporal_macs(p: Mapping[str, Any], scale: int) -> int:
    c, b, hc = int(p.get("channels", 32)), int(p.get("blocks", 2)), int(p.get("history_channels", 16))
    s2 = scale * scale
    return 3 * s2 * hc + (6 + hc) * c * 9 + b * c * c * 9 + c * 5 * s2 + 3 * 9 * s2


def _accum_macs(p: Mapping[str, Any], scale: int) -> int:
    c, b, hc = int(p.get("channels", 32)), int(p.get("blocks", 2)), int(p.get("history_channels", 16))
    s2 = scale * scale
    display = 3 * s2 * 3 * s2 * int(p.get("display", 0)) ** 2  # three filters per colour, display x display
    detail = int(p.get("detail", 0))
    display += (3 + 3 * s2 * detail**2) * s2 if detail else 0  # the luma, then three detail filters over it
    clip = int(bool(p.get("clip")))  # a sixth plane per sub-pixel for the projection, from the history's luma
    history = (5 + clip) * s2 * hc + 3 * s2 * clip  # the projection (and, with clip, the luma it reads)
    return history + (6 + hc) * c * 9 + b * c * c * 9 + c * 6 * s2 + 3 * 9 * 2 * s2 + display


#: ``AccumSR``'s hyperparameters no weight depends on: ``display`` adds filters that start as identity and
#: ``detail`` filters that start at zero (nothing added), so a stage may add them to weights that have none
RETUNABLE_ACCUM = (
    "keep_offset",
    "settle",
    "settle_base",
    "fresh_correction",
    "base_decay",
    "splat",
    "display",
    "detail",
    "hold",
    "hold_correction",
)

ARCHS: dict[str, ArchSpec] = {
    "plainsr": ArchSpec(
        name="plainsr",
        module="upscaler.archs.plainsr",
        cls="PlainSR",
        # head conv + hidden convs, one pixel each, + tail conv (1 px when 3x3); the base reads 1 px.
        receptive_field=lambda p: int(p.get("blocks", 4)) + 1 + int(p.get("tail", 3)) // 2,
        macs=_plainsr_macs,
        deepens=True,
    ),
    "temporal": ArchSpec(
        name="temporal",
        module="upscaler.archs.temporal",
        cls="TemporalSR",
        # head + hidden convs, one pixel each (the base reads one too); the history adds its motion
        receptive_field=lambda p: int(p.get("blocks", 2)) + 1,
        macs=_temporal_macs,
        temporal=True,
    ),
    "accum": ArchSpec(
        name="accum",
        module="upscaler.archs.accum",
        cls="AccumSR",
        # head + hidden convs, one pixel each (the splat reads one too); the history adds its motion
        receptive_field=lambda p: int(p.get("blocks", 2)) + 1,
        macs=_accum_macs,
        temporal=True,
        state_channels=5,
        reproject="cubic",
        depth=True,
        display_planes=lambda p: 3 if p.get("display") else 0,
        retunable=RETUNABLE_ACCUM,
        deepens=True,
        widens=("history_channels", "clip"),
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


def macs_per_pixel(arch: str, params: Mapping[str, Any], scale: int) -> int:
    """Multiply-accumulates per input pixel (convolutions only) of ``arch`` with ``params``."""
    return get_arch(arch).macs(params, scale)


def build_network(arch: str, scale: int, params: Mapping[str, Any]) -> Any:
    """Instantiate the ``nn.Module`` (imports torch)."""
    spec = get_arch(arch)
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    return cls(scale=scale, **dict(params))
