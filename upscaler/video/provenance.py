"""Which engine made a job's frames, recorded beside its segments and checked before any segment joins them.

The engine and precision a job runs in are what the machine chose, not
what was asked for: ``--backend auto`` takes the first engine that loads
there, and without ``--precision`` each engine picks its own (on the CPU
that may depend on the CPU). Ray workers choose on their own machines, so
they may differ from each other and from a local run. Frames from two
engines or precisions differ, so one output must never join segments made
by both: the engine actually used is written to ``engine.json`` in the work
folder before the first segment is renamed into place, and every later
segment (from this run, a resumed one, or any worker) must match it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from upscaler.video.probe import VideoError

__all__ = ["MadeBy", "MixedEngines", "check_same", "read_made_by", "write_made_by"]

RECORD = "engine.json"


@dataclass(frozen=True)
class MadeBy:
    """The engine (its name, e.g. ``onnxruntime-cpu``) and precision that upscaled some frames."""

    engine: str
    precision: str

    @classmethod
    def of(cls, upscaler) -> MadeBy:
        """What a loaded ``Upscaler`` actually runs."""
        return cls(upscaler.engine.name, upscaler.engine.precision)

    def __str__(self) -> str:
        return f"{self.engine} {self.precision}"

    def flags(self) -> str:
        """The options that ask for exactly this engine (every engine name is also a ``--backend``)."""
        return f"--backend {self.engine} --precision {self.precision}"


class MixedEngines(VideoError):
    """Segments made by different engines or precisions would be joined into one output."""


def check_same(recorded: MadeBy | None, new: MadeBy) -> None:
    """``MixedEngines`` unless ``new`` may join segments made by ``recorded`` (None: no segment yet)."""
    if recorded is None or recorded == new:
        return
    raise MixedEngines(
        f"the finished segments were made by {recorded}, this run's by {new}, and one video never mixes frames "
        f"of two engines or precisions: resume with {recorded.flags()} (with --ray, on workers that all run it), "
        f"or add --restart to discard the finished segments"
    )


def read_made_by(folder: Path) -> MadeBy | None:
    """The engine recorded in a work folder; None if there is no (readable) record."""
    try:
        data = json.loads((folder / RECORD).read_text())
        return MadeBy(str(data["engine"]), str(data["precision"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_made_by(folder: Path, made_by: MadeBy) -> None:
    """Record the engine of a work folder (atomically: a crash leaves the old record or the new one)."""
    from upscaler.io import write_atomic

    write_atomic(folder / RECORD, json.dumps(asdict(made_by), indent=2))
