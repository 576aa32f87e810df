"""Service settings: defaults, then ``UPSCALER_*`` environment variables, then command-line flags.

Every value is checked at start; all problems are reported together, each
naming the setting and where it came from. Each field carries its help text
(and, where the values are a fixed set, its choices) for ``upscaler serve --help``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "ENV_PREFIX",
    "FRAME_BYTES",
    "HISTORY_BYTES",
    "STEP_BYTES",
    "Settings",
    "SettingsError",
    "choices_of",
    "help_of",
    "load_settings",
    "stream_memory_bound",
]

ENV_PREFIX = "UPSCALER_"


class SettingsError(ValueError):
    """One or more settings are invalid."""


def _backends() -> tuple[str, ...]:
    from upscaler.runtime import BACKENDS

    return tuple(BACKENDS)


def _precisions() -> tuple[str, ...]:
    from upscaler.runtime import PRECISIONS

    return ("auto", *PRECISIONS, "")  # auto and empty: each engine's best (auto is what the other commands say)


#: Memory per output pixel of a temporal stream's frames, in bytes (the shipped models, measured by
#: ``python -m server.measure_streams``): a stream's history (the temporal models' eight float32 planes: the
#: shown frame, the samples' mean, the samples gathered and depth) ...
HISTORY_BYTES = 32
#: ... each frame in flight (its message, 11 bytes per input pixel, and its reply, 3 per output pixel) ...
FRAME_BYTES = 6
#: ... and the frame being upscaled, once per model for all its streams: the shared scratch and ONNX Runtime's
#: arena, which grows in powers of two (x2 runs its network on 4 times the input pixels of x4).
STEP_BYTES = {4: 240, 2: 320}  # x4: +40 for the display filters (the fused CPU engine stays within it)


def stream_memory_bound(settings: Settings, scales: Sequence[int]) -> int:
    """The most memory, in bytes, the temporal streams can take beyond the ready service, serving temporal
    models of ``scales``: every stream (``max_streams``) at ``max_pixels`` output pixels with
    ``max_in_flight`` frames in flight, and each model's step at that size."""
    per_stream = HISTORY_BYTES + FRAME_BYTES * (settings.max_in_flight + 1)
    steps = sum(STEP_BYTES.get(s, max(STEP_BYTES.values())) for s in scales)
    return settings.max_pixels * (steps + settings.max_streams * per_stream) if scales else 0


def _doc(help: str, choices: Callable[[], Sequence[str]] | None = None) -> dict[str, Any]:
    """A field's metadata: its help text and (imported only when asked for) its choices."""
    return {"help": help, "choices": choices}


@dataclass
class Settings:
    """How the service runs. Field names are the flag names (``--max-batch-size``) and,
    upper-cased with the prefix, the environment variables (``UPSCALER_MAX_BATCH_SIZE``)."""

    host: str = field(default="127.0.0.1", metadata=_doc("address to listen on"))
    port: int = field(default=8000, metadata=_doc("TCP port"))
    models: list[str] = field(
        default_factory=lambda: ["default"],
        metadata=_doc(
            "models loaded at start, by name, alias or .safetensors path (the first is the default); "
            "clients may name only these"
        ),
    )
    backend: str = field(default="auto", metadata=_doc("inference engine", _backends))
    precision: str = field(
        default="auto",
        metadata=_doc(
            "fp32, fp16 (GPUs) or int8 (quantised CPU graph); auto: each engine's best (FP16 on GPUs; INT8 on the "
            "CPU only where it runs faster within 0.15 dB, see 'upscaler info')",
            _precisions,
        ),
    )
    threads: int = field(default=0, metadata=_doc("CPU threads for inference (0: all cores)"))
    # On the CPU a batch costs more per frame than single frames: raise it on GPUs.
    max_batch_size: int = field(
        default=1, metadata=_doc("requests of one shape run together in one engine call, at most this many")
    )
    # 0: requests arriving while the engine is busy still share its next call, so batches grow with load at
    # no latency cost.
    max_batch_delay_ms: float = field(default=0.0, metadata=_doc("how long a batch's first request waits for company"))
    max_queue: int = field(default=64, metadata=_doc("requests waiting or running before new ones get 503"))
    request_timeout_s: float = field(
        default=30.0,
        metadata=_doc(
            "a request not answered this long after its body arrived gets 504 (its remaining work is dropped)"
        ),
    )
    max_body_bytes: int = field(default=32 * 1024 * 1024, metadata=_doc("larger request bodies get 413"))
    # Counts OUTPUT pixels: the cost (time and memory) of a request grows with what it produces, and an x4
    # model makes 16 output pixels of each input pixel. 4096x4096 output is 1024x1024 input at x4, 2048x2048
    # at x2; about 3 s of engine time for x4-fast on 2 CPU cores.
    max_pixels: int = field(
        default=4096 * 4096,
        metadata=_doc("the most output pixels one request may produce (width x height x scale^2), else 413"),
    )
    large_lanes: int = field(
        default=1,
        metadata=_doc(
            "images over 512 px on a side (1920 on a GPU; upscaled in 256 px tiles) processed at once; more wait "
            "in line (their tiles always take turns with other requests in the engine queue)"
        ),
    )
    max_in_flight: int = field(default=4, metadata=_doc("raw frames per WebSocket connection being processed at once"))
    # One model's network, its threads and its scratch are shared by all streams (stream_memory_bound).
    max_streams: int = field(
        default=4,
        metadata=_doc(
            "temporal WebSocket streams open at once; more get 503 at the handshake. Each keeps "
            f"{HISTORY_BYTES} bytes per output pixel (its history: 118 MB at 640x360 in, x4) and up to {FRAME_BYTES} "
            "more per frame in flight; the frame being upscaled needs up to "
            f"{STEP_BYTES[4]} (x4) or {STEP_BYTES[2]} (x2) bytes per output pixel, once per model. So streams "
            f"take at most MAX_PIXELS x ({STEP_BYTES[2]} + MAX_STREAMS x ({HISTORY_BYTES} + {FRAME_BYTES} x "
            "(MAX_IN_FLIGHT + 1))) bytes for one model (9.5 GB at the defaults, 2.1 GB with --max-pixels "
            "3686400: 1280x720 in, x2); all of it goes back once they close"
        ),
    )
    stream_send_timeout_s: float = field(
        default=20.0,
        metadata=_doc(
            "a stream whose client leaves a reply unread this long is closed (1008) and its slot freed; a client "
            "that neither sends nor reads is dropped by the WebSocket ping after about 40 s"
        ),
    )
    body_timeout_s: float = field(
        default=10.0, metadata=_doc("a request body that stalls this long between reads gets 408")
    )
    header_timeout_s: float = field(
        default=10.0, metadata=_doc("a connection that takes this long to send its request headers gets 408")
    )
    api_keys: list[str] = field(
        default_factory=list, metadata=_doc("accepted bearer keys, each 16+ characters (none: no auth)")
    )
    open_health: bool = field(default=True, metadata=_doc("/healthz and /readyz need no key"))
    open_metrics: bool = field(default=True, metadata=_doc("/metrics needs no key"))
    warmup: bool = field(default=True, metadata=_doc("run each model once before /readyz turns true"))
    engine_spin: bool = field(
        default=False, metadata=_doc("let ONNX Runtime's threads spin between calls (they take cores from HTTP)")
    )
    access_log: bool = field(default=True, metadata=_doc("one JSON line per request on stderr"))
    shutdown_timeout_s: float = field(
        default=30.0,
        metadata=_doc("on SIGTERM, how long in-flight requests may finish; the rest get 503 and the process exits"),
    )

    @property
    def engine_precision(self) -> str | None:
        """The precision asked of the engines: None for auto (each engine's best)."""
        return None if self.precision in ("auto", "") else self.precision

    def problems(self) -> list[str]:
        """Every invalid value, described."""
        out = []
        if not 0 < self.port < 65536:
            out.append(f"port must be 1-65535, got {self.port}")
        if not self.models:
            out.append("models must name at least one model")
        positive = (
            "max_batch_size",
            "max_queue",
            "max_body_bytes",
            "max_pixels",
            "max_in_flight",
            "max_streams",
            "large_lanes",
        )
        out += [f"{name} must be at least 1, got {getattr(self, name)}" for name in positive if getattr(self, name) < 1]
        if self.threads < 0:
            out.append(f"threads must not be negative, got {self.threads}")
        if self.max_batch_delay_ms < 0:
            out.append(f"max_batch_delay_ms must not be negative, got {self.max_batch_delay_ms}")
        timeouts = (
            "request_timeout_s",
            "shutdown_timeout_s",
            "body_timeout_s",
            "header_timeout_s",
            "stream_send_timeout_s",
        )
        for name in timeouts:
            if getattr(self, name) <= 0:
                out.append(f"{name} must be positive, got {getattr(self, name)}")
        if any(len(k) < 16 for k in self.api_keys):
            out.append("api_keys must each be at least 16 characters")
        if self.precision not in _precisions():
            out.append(f"precision must be one of {', '.join(_precisions()[:-1])}, got {self.precision!r}")
        if self.backend not in _backends():
            out.append(f"backend must be one of {', '.join(_backends())}, got {self.backend!r}")
        return out


def help_of(name: str) -> str:
    """The help text of setting ``name``."""
    return next(f.metadata["help"] for f in fields(Settings) if f.name == name)


def choices_of(name: str) -> tuple[str, ...] | None:
    """The values setting ``name`` may take, where they are a fixed set."""
    make = next(f.metadata["choices"] for f in fields(Settings) if f.name == name)
    return tuple(make()) if make else None


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _parse(kind: type, text: str) -> Any:
    if kind is bool:
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ValueError(f"expected true or false, got {text!r}")
    if kind is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def _kinds() -> dict[str, type]:
    defaults = Settings()
    return {f.name: type(getattr(defaults, f.name)) for f in fields(Settings)}


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, updated by ``UPSCALER_*`` variables, updated by ``overrides`` (flags; None means unset)."""
    environ = os.environ if environ is None else environ
    kinds, values, problems = _kinds(), {}, []
    for name, kind in kinds.items():
        var = ENV_PREFIX + name.upper()
        if var in environ:
            try:
                values[name] = _parse(kind, environ[var])
            except ValueError as exc:
                problems.append(f"{var}: {exc}")
    for name, value in (overrides or {}).items():
        if name not in kinds:
            raise KeyError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = value
    settings = Settings(**values)
    problems += settings.problems()
    if problems:
        raise SettingsError("invalid settings: " + "; ".join(problems))
    return settings
