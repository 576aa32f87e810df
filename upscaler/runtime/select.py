"""Choosing an engine: named backends and the ``auto`` fallback chain."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from upscaler.models import ModelDescriptor
from upscaler.runtime.base import Engine, EngineUnavailable

__all__ = ["BACKENDS", "EngineChoice", "create_engine", "probe_engines"]

log = logging.getLogger(__name__)


def _ort_cpu(model: ModelDescriptor, threads: int | None, spin: bool = True) -> Engine:
    from upscaler.runtime.ort_cpu import OrtCpuEngine

    return OrtCpuEngine(model, threads=threads, spin=spin)


def _torch_cpu(model: ModelDescriptor, threads: int | None, spin: bool = True) -> Engine:
    from upscaler.runtime.torch_engine import TorchEngine

    return TorchEngine(model, device="cpu", threads=threads)


#: Engine factories by name, in the order ``auto`` tries them.
ENGINES: dict[str, Callable[..., Engine]] = {
    "onnxruntime-cpu": _ort_cpu,
    "torch-cpu": _torch_cpu,
}

#: What each ``backend`` name may use, in order of preference.
BACKENDS: dict[str, tuple[str, ...]] = {
    "auto": tuple(ENGINES),
    "onnxruntime": ("onnxruntime-cpu",),
    "torch": ("torch-cpu",),
}


@dataclass(frozen=True)
class EngineChoice:
    """Whether one engine can run a model here, and why not."""

    engine: str  #: engine name
    available: bool  #: it loaded
    reason: str = ""  #: why it did not


def create_engine(
    model: ModelDescriptor, backend: str = "auto", *, threads: int | None = None, spin: bool = True
) -> Engine:
    """The first engine of ``backend``'s chain that loads ``model``.

    ``spin=False`` asks engines with spinning worker threads (ONNX Runtime)
    to let them sleep between calls.

    Logs one line per engine skipped, with the reason; raises
    ``EngineUnavailable`` listing every reason if none loads.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    reasons = []
    for name in BACKENDS[backend]:
        try:
            engine = ENGINES[name](model, threads, spin)
        except EngineUnavailable as exc:
            log.info("engine %s skipped: %s", name, exc)
            reasons.append(f"{name}: {exc}")
            continue
        log.info("engine %s selected for model %s", name, model.name)
        return engine
    raise EngineUnavailable(f"no engine can run model {model.name!r} (" + "; ".join(reasons) + ")")


def probe_engines(model: ModelDescriptor) -> list[EngineChoice]:
    """Try every engine on ``model`` and report which load (for ``models --verbose``)."""
    choices = []
    for name, factory in ENGINES.items():
        try:
            factory(model, 1)
        except EngineUnavailable as exc:
            choices.append(EngineChoice(name, False, str(exc)))
        else:
            choices.append(EngineChoice(name, True))
    return choices
