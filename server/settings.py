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

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "choices_of", "help_of", "load_settings"]

ENV_PREFIX = "UPSCALER_"


class SettingsError(ValueError):
    """One or more settings are invalid."""


def _backends() -> tuple[str, ...]:
    from upscaler.runtime import BACKENDS

    return tuple(BACKENDS)


def _precisions() -> tuple[str, ...]:
    from upscaler.runtime import PRECISIONS

    return ("", *PRECISIONS)


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
        default="",
        metadata=_doc("fp32, fp16 (GPUs) or int8 (quantised CPU graph); empty: each engine's best", _precisions),
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
    # Each temporal stream holds its own history (the previous output and the buffers that reproject it): about
    # 38 MB at 320x180 in, x4 (benchmarks/results/stream-temporal-x4.json), growing with the output pixels (about
    # 16 times that at 1280x720 in). One model's network and its threads are shared by all streams.
    max_streams: int = field(
        default=4,
        metadata=_doc(
            "temporal WebSocket streams open at once (each holds its history); more get 503 at the handshake"
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
        for name in ("request_timeout_s", "shutdown_timeout_s", "body_timeout_s", "header_timeout_s"):
            if getattr(self, name) <= 0:
                out.append(f"{name} must be positive, got {getattr(self, name)}")
        if any(len(k) < 16 for k in self.api_keys):
            out.append("api_keys must each be at least 16 characters")
        if self.precision not in _precisions():
            out.append(f"precision must be one of {', '.join(_precisions()[1:])} (or empty), got {self.precision!r}")
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
