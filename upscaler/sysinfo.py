"""What machine this is: recorded with training runs and measurements."""

from __future__ import annotations

import os
import platform
from functools import lru_cache

__all__ = [
    "SIMD_FLAGS",
    "cpu_count",
    "cpu_flags",
    "cpu_id",
    "cpu_name",
    "gpus",
    "libraries",
    "machine_info",
    "nvidia_driver",
]

#: The CPU features that decide how fast our networks run (INT8 above all): recorded with every figure.
SIMD_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8")


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (empty where it cannot be read): read once."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the architecture."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_id() -> str:
    """The CPU's vendor, family, model and stepping (``AuthenticAMD family 23 model 1 stepping 2``), or "".

    Cloud VMs often mask the model name ("AMD EPYC" covers Zen 1 to Zen 5),
    and CPUs with the same SIMD flags still differ in what INT8 gains, so
    figures record this too.
    """
    fields = _cpuinfo()
    if "cpu family" not in fields:
        return ""
    parts = [fields.get("vendor_id", ""), f"family {fields['cpu family']}", f"model {fields.get('model', '?')}"]
    if "stepping" in fields:
        parts.append(f"stepping {fields['stepping']}")
    return " ".join(p for p in parts if p)


def cpu_flags() -> tuple[str, ...]:
    """Which of ``SIMD_FLAGS`` this CPU has (from ``/proc/cpuinfo``; empty where it cannot be read)."""
    present = set(_cpuinfo().get("flags", "").split())
    return tuple(f for f in SIMD_FLAGS if f in present)


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def nvidia_driver() -> str | None:
    """The NVIDIA kernel driver's version line, or None: a cheap check before importing GPU libraries.

    Cached: ``find_library`` runs ``ldconfig``, and every GPU engine of the chain asks.
    """
    try:
        with open("/proc/driver/nvidia/version") as fh:
            return fh.readline().strip() or "unknown"
    except OSError:
        pass
    import ctypes.util

    return "libcuda present" if ctypes.util.find_library("cuda") else None


def _version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def libraries() -> dict:
    """Versions of the inference libraries (None: not installed), and ONNX Runtime's execution providers."""
    out: dict = {
        "numpy": _version("numpy"),
        "opencv": _version("opencv-python-headless") or _version("opencv-contrib-python-headless"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "torch": _version("torch"),
        "tensorrt": _version("tensorrt"),
    }
    try:
        import onnxruntime

        out["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        out["onnxruntime_providers"] = []
    return out


def gpus() -> list[dict]:
    """NVIDIA GPUs (name, driver, memory) from nvidia-smi; empty without a driver."""
    import shutil
    import subprocess

    if nvidia_driver() is None or shutil.which("nvidia-smi") is None:
        return []
    try:
        text = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[part.strip() for part in line.split(",")] for line in text.splitlines() if line.strip()]
    return [{"name": r[0], "driver": r[1], "memory": r[2]} for r in rows if len(r) == 3]


def machine_info() -> dict:
    """Where figures were taken: CPU, cores, Python, NVIDIA driver and GPUs, library versions."""
    return {
        "cpu": cpu_name(),
        "cpu_id": cpu_id(),
        "cpu_flags": list(cpu_flags()),
        "cores": cpu_count(),
        "python": platform.python_version(),
        "nvidia_driver": nvidia_driver(),
        "gpus": gpus(),
        "libraries": libraries(),
    }
