"""Run ``upscaler`` in a child process that holds at a known point, so a test never races the job.

``python tests/video_launcher.py MARKER SEGMENTS [--worker-pythonpath DIR] -- ARGS...`` runs
``upscaler ARGS...`` as the console script does, except that once SEGMENTS segments have been
finished (renamed into place) by this process, the job holds:

* a local run in the first engine call of its next segment: the decoder and encoder threads
  are live, as when a user presses Ctrl-C mid-segment;
* a Ray driver (``--ray`` in ARGS) right after its SEGMENTS-th segment, before it takes the next.

It then writes MARKER and sleeps until a signal ends it (or, should the test be gone, exits with
status 99 after ``HOLD_LIMIT`` seconds: no orphan sleeps forever). A test waits for MARKER and
interrupts or kills the process there: the job can neither finish early nor be caught before a
segment is done, however fast or slow the machine is. Only these two points are wrapped; signal
handling, segment files and ``--resume`` are the real ones.

``--worker-pythonpath DIR``: this run's Ray workers start with ``PYTHONPATH=DIR`` (a
``sitecustomize`` there can make them unlike the machine that made the finished segments).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

#: Seconds a held job waits for its signal before giving up on the test
HOLD_LIMIT = 1800


def _hold(marker: Path) -> None:
    """Write ``marker`` and sleep until a signal ends the process."""
    marker.write_text("holding\n")
    deadline = time.monotonic() + HOLD_LIMIT
    while time.monotonic() < deadline:
        time.sleep(0.05)
    os._exit(99)


def instrument(marker: Path, segments: int, ray: bool) -> None:
    """Wrap the job's segment functions so that the run holds after ``segments`` finished ones."""
    from upscaler.video import job

    finished = 0
    real_done = job.JobPlan.done
    real_upscale_segment = job.upscale_segment

    def done(self, *args, **kwargs) -> None:
        nonlocal finished
        real_done(self, *args, **kwargs)
        finished += 1
        if ray and finished >= segments:
            _hold(marker)

    def upscale_segment(info, segment, upscaler, out_path, *args, **kwargs):
        if finished >= segments:  # this segment's engine call holds (an instance attribute shadows the method)
            upscaler.upscale_batch = lambda images: _hold(marker)
        return real_upscale_segment(info, segment, upscaler, out_path, *args, **kwargs)

    job.JobPlan.done = done
    job.upscale_segment = upscale_segment


def _worker_pythonpath(path: str) -> None:
    """Start this run's Ray workers with ``PYTHONPATH=path`` (a job-level runtime environment)."""
    import ray

    real_init = ray.init

    def init(*args, **kwargs):
        return real_init(*args, runtime_env={"env_vars": {"PYTHONPATH": path}}, **kwargs)

    ray.init = init


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("marker", type=Path)
    parser.add_argument("segments", type=int)
    parser.add_argument("--worker-pythonpath")
    split = sys.argv.index("--")  # what follows is upscaler's, whatever it looks like
    options, args = parser.parse_args(sys.argv[1:split]), sys.argv[split + 1 :]
    # Ctrl-C as in a terminal, even when the test runs where SIGINT is ignored (a shell's background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    instrument(options.marker, options.segments, ray="--ray" in args)
    if options.worker_pythonpath:
        _worker_pythonpath(options.worker_pythonpath)
    from upscaler.cli import main as upscaler_main

    return upscaler_main(args)


if __name__ == "__main__":
    sys.exit(main())
