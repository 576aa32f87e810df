"""Service settings: defaults, then ``UPSCALER_*`` environment variables, then command-line flags.

Every value is checked at start; all problems are reported together, each
naming the setting and where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "load_settings"]

ENV_PREFIX = "UPSCALER_"


class SettingsError(ValueError):
    """One or more settings are invalid."""


@dataclass
class Settings:
    """How the service runs. Field names are the flag names (``--max-batch-size``) and,
    upper-cased with the prefix, the environment variables (``UPSCALER_MAX_BATCH_SIZE``)."""

    host: str = "127.0.0.1"  #: address to listen on
    port: int = 8000  #: TCP port
    models: list[str] = field(default_factory=lambda: ["default"])  #: models loaded at start (the first is default)
    backend: str = "auto"  #: inference engine (auto, onnxruntime, torch)
    precision: str = ""  #: fp32, fp16 (GPUs) or int8 (quantised CPU graph); empty: each engine's best
    threads: int = 0  #: CPU threads for inference (0: all cores)
    max_batch_size: int = 1  #: requests of one shape run together, at most this many (raise it on GPUs:
    #: on the CPU a batch costs more per frame than single frames)
    max_batch_delay_ms: float = 0.0  #: how long a batch's first request waits for company (0: requests
    #: arriving while the engine is busy still share its next call, so batches grow with load at no latency cost)
    max_queue: int = 64  #: requests waiting or running before new ones get 503
    request_timeout_s: float = 30.0  #: a request not answered by then gets 504
    max_body_bytes: int = 32 * 1024 * 1024  #: larger request bodies get 413
    max_pixels: int = 4096 * 4096  #: larger input images or frames get 413 (read from the header)
    max_in_flight: int = 4  #: raw frames per WebSocket connection being processed at once
    api_keys: list[str] = field(default_factory=list)  #: accepted bearer keys (empty: no auth)
    open_health: bool = True  #: /healthz and /readyz need no key
    open_metrics: bool = True  #: /metrics needs no key
    warmup: bool = True  #: run each model once before /readyz turns true
    engine_spin: bool = False  #: let ONNX Runtime's threads spin between calls (they take cores from HTTP work)
    access_log: bool = True  #: one JSON line per request on stderr
    shutdown_timeout_s: float = 30.0  #: how long shutdown waits for in-flight requests

    def problems(self) -> list[str]:
        """Every invalid value, described."""
        out = []
        if not 0 < self.port < 65536:
            out.append(f"port must be 1-65535, got {self.port}")
        if not self.models:
            out.append("models must name at least one model")
        positive = ("max_batch_size", "max_queue", "max_body_bytes", "max_pixels", "max_in_flight")
        out += [f"{name} must be at least 1, got {getattr(self, name)}" for name in positive if getattr(self, name) < 1]
        if self.threads < 0:
            out.append(f"threads must not be negative, got {self.threads}")
        if self.max_batch_delay_ms < 0:
            out.append(f"max_batch_delay_ms must not be negative, got {self.max_batch_delay_ms}")
        for name in ("request_timeout_s", "shutdown_timeout_s"):
            if getattr(self, name) <= 0:
                out.append(f"{name} must be positive, got {getattr(self, name)}")
        if any(len(k) < 16 for k in self.api_keys):
            out.append("api_keys must each be at least 16 characters")
        from upscaler.runtime import BACKENDS, PRECISIONS

        if self.precision and self.precision not in PRECISIONS:
            out.append(f"precision must be one of {', '.join(PRECISIONS)} (or empty), got {self.precision!r}")

        if self.backend not in BACKENDS:
            out.append(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        return out


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
