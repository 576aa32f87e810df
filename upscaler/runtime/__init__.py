"""Inference engines behind one protocol, and the selector that picks one."""

from upscaler.runtime.base import PRECISIONS, Engine, EngineOptions, EngineUnavailable, check_batch
from upscaler.runtime.select import BACKENDS, ENGINES, EngineChoice, create_engine, probe_engines

__all__ = [
    "BACKENDS",
    "ENGINES",
    "PRECISIONS",
    "Engine",
    "EngineChoice",
    "EngineOptions",
    "EngineUnavailable",
    "check_batch",
    "create_engine",
    "probe_engines",
]
