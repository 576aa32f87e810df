"""Host memory per benchmark case, each measured in a fresh process.

The sweep's own process holds every subject at once (a LapSRN peer alone
is over a gigabyte), so its resident memory says nothing about any one
case. Each case therefore runs again in a child process that imports the
harness, loads only that subject and makes the case's calls (network and
end to end, ``runs`` times); the child reports

- peak: its resident high-water mark (``VmHWM``): what running this case
  alone takes, interpreter and libraries included (``host_peak_mb``);
- case: that peak less its resident memory just before it built the
  subject, i.e. above Python with NumPy, OpenCV and the harness: the
  engine's library, the model and this case's buffers (``host_case_mb``).

``VmHWM`` belongs to the child's own address space; ``ru_maxrss`` would not
do: Linux carries the parent's high-water mark into it across ``exec``.
Elsewhere than Linux ``ru_maxrss`` is the fallback, and may include it.

Run as ``python -m upscaler.bench.memory`` with a JSON request on stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence

__all__ = ["MEMORY_NOTE", "MemoryProbeError", "measure_memory", "probe_case"]

#: What the memory figures mean, written beside them in the JSON and markdown reports.
MEMORY_NOTE = (
    "host_peak_mb: peak resident memory of a fresh process running only that case (interpreter and libraries "
    "included); host_case_mb: that peak less the same process's resident memory before it loaded the subject "
    "(engine library, model and the case's buffers); device_peak_mb: CUDA memory allocated through PyTorch"
)


class MemoryProbeError(RuntimeError):
    """A memory probe's child process failed."""


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (None where there is no such file)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _max_rss_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _current_bytes() -> int:
    return _status_bytes("VmRSS") or _max_rss_bytes()


def _peak_bytes() -> int:
    return _status_bytes("VmHWM") or _max_rss_bytes()


def _build(recipe: dict):
    from upscaler.bench.peers import peer_from_recipe
    from upscaler.bench.runner import EngineSubject, PeerSubject

    if recipe["kind"] != "engine":
        return PeerSubject(peer_from_recipe(recipe))
    from upscaler.facade import Upscaler

    up = Upscaler(recipe["model"], recipe["engine"], tile=0, threads=recipe.get("threads"),
                  precision=recipe.get("precision"), spin=False)  # fmt: skip
    return EngineSubject(up, recipe)


def _child(request: dict) -> dict:
    """In the child: build the subject, run the case, report its memory."""
    from upscaler.bench.runner import STAGES, end_to_end, frames_for

    baseline = _current_bytes()  # the harness is imported (runner pulls in NumPy, OpenCV, codecs)
    frames, encoded = frames_for(request["width"], request["height"], request["batch"], seed=0)
    subject = _build(request["subject"])
    net_in = subject.network_input(frames)
    for _ in range(request["runs"]):
        subject.network(net_in)
        end_to_end(subject, encoded, {s: [] for s in STAGES})
    return {"baseline_bytes": baseline, "peak_bytes": _peak_bytes()}


def probe_case(recipe: dict, width: int, height: int, batch: int, *, runs: int = 2) -> tuple[int, int]:
    """``(peak, case)`` bytes of one case run alone in a fresh process (see the module docstring)."""
    request = {"subject": recipe, "width": width, "height": height, "batch": batch, "runs": runs}
    done = subprocess.run(
        [sys.executable, "-m", "upscaler.bench.memory"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise MemoryProbeError(last)
    figures = json.loads(lines[-1])  # libraries may print before it; the answer is the last line
    return figures["peak_bytes"], figures["peak_bytes"] - figures["baseline_bytes"]


def measure_memory(cases: Sequence, *, runs: int = 2, on_step: Callable[[object], None] | None = None) -> list[str]:
    """Fill ``host_peak_bytes`` and ``host_case_bytes`` of every case; the failures, one line each.

    A case whose subject has no recipe, or whose probe fails, keeps None:
    a failed probe costs its figures, not the sweep.
    """
    failures = []
    for case in cases:
        recipe = getattr(case.subject, "recipe", None)
        if recipe is not None:
            try:
                case.host_peak_bytes, case.host_case_bytes = probe_case(
                    recipe, case.width, case.height, case.batch, runs=runs
                )
            except MemoryProbeError as exc:
                failures.append(f"{case.subject.name} {case.width}x{case.height} batch {case.batch}: {exc}")
        if on_step:
            on_step(case)
    return failures


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.stdin.read()))))
