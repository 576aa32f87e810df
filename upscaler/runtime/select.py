"""Choosing an engine: one registry for single-frame and temporal models, named backends, the ``auto`` chain.

Each engine (``ENGINES``) says how it loads each kind of model it runs: a
single-frame ``Engine`` (``run`` on batches) or a ``TemporalEngine`` (``step``
with its own state, ``stream``). A backend name means the same for both
kinds; an engine that does not run a model's kind is skipped with that
reason.

``auto`` walks TensorRT -> ONNX Runtime (TensorRT, then CUDA provider) ->
PyTorch CUDA -> ONNX Runtime CPU -> PyTorch CPU and logs one line per engine
skipped, with the reason. GPU engines first check for an NVIDIA driver, so
a CPU-only machine skips them without importing any GPU library. A chain
skips the engines that would run a temporal model without its still-camera
hold (``runtime.hold``: TensorRT and ONNX Runtime's CUDA provider run the
whole step as one graph, which has no input for it), so ``auto`` and
``gpu`` give the model as it was measured; named alone, such an engine runs
it without the hold and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from upscaler.models import ModelDescriptor
from upscaler.runtime.base import Engine, EngineOptions, EngineUnavailable
from upscaler.runtime.stream import TemporalEngine
from upscaler.sysinfo import nvidia_driver

__all__ = [
    "BACKENDS", "ENGINES", "HOLD_REASON", "EngineChoice", "EngineSpec", "backends_for", "create_engine", "drops_hold",
    "probe_engines",
]  # fmt: skip

log = logging.getLogger(__name__)


def _require_driver() -> None:
    if nvidia_driver() is None:
        raise EngineUnavailable("no NVIDIA GPU driver on this machine")


def _tensorrt(model: ModelDescriptor, options: EngineOptions) -> Engine:
    _require_driver()
    from upscaler.runtime.tensorrt import TensorRTEngine

    return TensorRTEngine(model, options)


def _ort_tensorrt(model: ModelDescriptor, options: EngineOptions) -> Engine:
    _require_driver()
    from upscaler.runtime.ort_gpu import OrtGpuEngine

    return OrtGpuEngine(model, options, provider="tensorrt")


def _ort_cuda(model: ModelDescriptor, options: EngineOptions) -> Engine:
    _require_driver()
    from upscaler.runtime.ort_gpu import OrtGpuEngine

    return OrtGpuEngine(model, options, provider="cuda")


def _torch_cuda(model: ModelDescriptor, options: EngineOptions) -> Engine:
    _require_driver()
    from upscaler.runtime.torch_engine import TorchCudaEngine

    return TorchCudaEngine(model, options)


def _ort_cpu(model: ModelDescriptor, options: EngineOptions) -> Engine:
    from upscaler.runtime.ort_cpu import OrtCpuEngine

    return OrtCpuEngine(model, options)


def _torch_cpu(model: ModelDescriptor, options: EngineOptions) -> Engine:
    from upscaler.runtime.torch_engine import TorchEngine

    return TorchEngine(model, options)


def _tensorrt_step(model: ModelDescriptor, options: EngineOptions) -> TemporalEngine:
    _require_driver()
    from upscaler.runtime.temporal_tensorrt import TensorRTTemporalEngine

    return TensorRTTemporalEngine(model, options)


def _ort_cuda_step(model: ModelDescriptor, options: EngineOptions) -> TemporalEngine:
    _require_driver()
    from upscaler.runtime.temporal_ort_cuda import OrtCudaTemporalEngine

    return OrtCudaTemporalEngine(model, options)


def _torch_cuda_step(model: ModelDescriptor, options: EngineOptions) -> TemporalEngine:
    _require_driver()
    from upscaler.runtime.temporal_torch import TorchTemporalEngine

    return TorchTemporalEngine(model, options, cuda=True)


def _ort_cpu_step(model: ModelDescriptor, options: EngineOptions) -> TemporalEngine:
    from upscaler.runtime.temporal_ort_cpu import OrtCpuTemporalEngine

    return OrtCpuTemporalEngine(model, options)


def _torch_cpu_step(model: ModelDescriptor, options: EngineOptions) -> TemporalEngine:
    from upscaler.runtime.temporal_torch import TorchTemporalEngine

    return TorchTemporalEngine(model, options)


@dataclass(frozen=True)
class EngineSpec:
    """One engine: how it loads each kind of model it runs (``None``: a kind it does not run)."""

    frame: Callable[[ModelDescriptor, EngineOptions], Engine] | None  #: single-frame models (``run``)
    temporal: Callable[[ModelDescriptor, EngineOptions], TemporalEngine] | None  #: temporal models (``step``)
    holds: bool = True  #: applies a temporal model's still-camera hold (``runtime.hold``)

    def factory(self, model: ModelDescriptor) -> Callable | None:
        """What loads ``model`` on this engine, or None."""
        return self.temporal if model.temporal else self.frame


#: Every engine, by name, in the order ``auto`` tries them (GPU paths first), with the model kinds it runs.
ENGINES: dict[str, EngineSpec] = {
    "tensorrt": EngineSpec(_tensorrt, _tensorrt_step, holds=False),
    "onnxruntime-tensorrt": EngineSpec(_ort_tensorrt, None),
    "onnxruntime-cuda": EngineSpec(_ort_cuda, _ort_cuda_step, holds=False),
    "torch-cuda": EngineSpec(_torch_cuda, _torch_cuda_step),
    "onnxruntime-cpu": EngineSpec(_ort_cpu, _ort_cpu_step),
    "torch-cpu": EngineSpec(_torch_cpu, _torch_cpu_step),
}

#: What each ``backend`` name may use, in order of preference; every engine name is a backend too. The same
#: for both model kinds: an engine that does not run a model's kind is skipped, with that reason.
BACKENDS: dict[str, tuple[str, ...]] = {
    "auto": tuple(ENGINES),
    "gpu": ("tensorrt", "onnxruntime-tensorrt", "onnxruntime-cuda", "torch-cuda"),
    "cpu": ("onnxruntime-cpu", "torch-cpu"),
    "onnxruntime": ("onnxruntime-tensorrt", "onnxruntime-cuda", "onnxruntime-cpu"),
    "torch": ("torch-cuda", "torch-cpu"),
    **{name: (name,) for name in ENGINES},
}


def backends_for(model: ModelDescriptor) -> list[str]:
    """The backend names with at least one engine that runs ``model``'s kind."""
    return [b for b, names in BACKENDS.items() if any(ENGINES[n].factory(model) for n in names)]


def drops_hold(name: str, model: ModelDescriptor) -> bool:
    """Whether engine ``name`` would run ``model`` without the still-camera hold its parameters ask for."""
    return bool(model.temporal and model.params.get("hold")) and not ENGINES[name].holds


#: Why a chain passes over an engine that ``drops_hold``.
HOLD_REASON = "runs the whole step as one graph, without the model's still-camera hold (name it to run it so)"


def _load(name: str, model: ModelDescriptor, options: EngineOptions):
    """Engine ``name`` with ``model`` loaded; ``EngineUnavailable`` when it does not run that kind."""
    factory = ENGINES[name].factory(model)
    if factory is None:
        kind = "temporal" if model.temporal else "single-frame"
        raise EngineUnavailable(f"{name} does not run {kind} models")
    return factory(model, options)


@dataclass(frozen=True)
class EngineChoice:
    """Whether one engine can run a model here, and why not."""

    engine: str  #: engine name
    available: bool  #: it loaded
    reason: str = ""  #: why it did not
    precision: str = ""  #: what it runs in, when it loaded
    precision_reason: str = ""  #: why that precision (requested, or the engine's own choice)


def create_engine(
    model: ModelDescriptor,
    backend: str = "auto",
    *,
    threads: int | None = None,
    spin: bool = True,
    precision: str | None = None,
    options: EngineOptions | None = None,
) -> Engine:
    """The first engine of ``backend``'s chain that loads ``model``.

    ``threads``, ``spin`` and ``precision`` build the ``EngineOptions`` when
    ``options`` is not given. Any failure to build an engine (not only
    ``EngineUnavailable``: a CUDA ``RuntimeError``, an ``OSError`` from the
    engine cache) moves on to the next, logging one line per engine skipped
    with the reason; raises ``EngineUnavailable`` listing every reason if
    none loads.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if options is None:
        options = EngineOptions(threads=threads, spin=spin, precision=precision)
    reasons, chain = [], BACKENDS[backend]
    for name in chain:
        if len(chain) > 1 and drops_hold(name, model):
            log.info("engine %s skipped: %s", name, HOLD_REASON)
            reasons.append(f"{name}: {HOLD_REASON}")
            continue
        try:
            engine = _load(name, model, options)
        except EngineUnavailable as exc:
            log.info("engine %s skipped: %s", name, exc)
            reasons.append(f"{name}: {exc}")
            continue
        except Exception as exc:  # a driver, library or cache failure: the next engine may still run
            why = f"failed to start ({type(exc).__name__}: {exc})"
            log.warning("engine %s skipped: %s", name, why)
            reasons.append(f"{name}: {why}")
            continue
        log.info("engine %s selected for model %s (%s)", name, model.name, engine.precision)
        if drops_hold(name, model):
            log.warning("engine %s runs %s without its still-camera hold (runtime.hold)", name, model.name)
        return engine
    if len(reasons) == 1:  # one engine asked for: its own reason says it all
        raise EngineUnavailable(reasons[0].split(": ", 1)[1])
    raise EngineUnavailable(f"no engine can run model {model.name!r} (" + "; ".join(reasons) + ")")


def probe_engines(model: ModelDescriptor, precision: str | None = None) -> list[EngineChoice]:
    """Try every engine on ``model`` and report which load, and why the others do not (an engine that would
    drop the model's still-camera hold is reported as the ``auto`` chain treats it, without loading it)."""
    choices = []
    for name in ENGINES:
        if drops_hold(name, model):
            choices.append(EngineChoice(name, False, HOLD_REASON))
            continue
        try:
            engine = _load(name, model, EngineOptions(precision=precision))  # default threads: what a run picks
        except EngineUnavailable as exc:
            choices.append(EngineChoice(name, False, str(exc)))
        except Exception as exc:  # reported like the chain does, never raised from a probe
            choices.append(EngineChoice(name, False, f"failed to start ({type(exc).__name__}: {exc})"))
        else:
            why = getattr(engine, "precision_reason", "") or ("requested" if precision else "the engine's default")
            choices.append(EngineChoice(name, True, precision=engine.precision, precision_reason=why))
    return choices
