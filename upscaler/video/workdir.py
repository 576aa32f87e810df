"""What a run does with the work folder of an unfinished job: continue it, refuse it, or discard it.

Finished segments cost minutes of engine time each, so none is deleted
unless the user asks. A folder whose record matches this run (``job.json``:
the input's path, size and modification time, the model (and for a
temporal model how it is fed: estimated motion, the cut detector), the
encoding settings and the segment plan; ``engine.json``: the engine that made the
segments, checked here when this run knows its own before starting) is
continued whatever the flags: its segments are what an uninterrupted run
makes. One that does not match is refused, saying why and how to go on,
unless the user asked to discard it: ``restart`` (``--restart``) discards
any unfinished job, ``replace`` (``--overwrite``) one this run cannot
continue. A folder without finished segments holds nothing to lose and is
reset freely.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from upscaler.video.probe import VideoError
from upscaler.video.provenance import MadeBy, check_same, read_made_by

__all__ = ["RECORD", "Claim", "Unfinished", "claim", "finished_segments", "recorded_encoding"]

#: ``keep``: continue a matching job (saying so), refuse any other; ``resume``: the same, asked for (--resume),
#: so nothing to say; ``replace``: continue a matching one, discard any other; ``restart``: discard whatever is
#: there.
Unfinished = Literal["keep", "resume", "replace", "restart"]
RECORD = "job.json"

#: The options behind each encoding setting in ``job.json``, to tell the user what a job was made with.
_FLAGS = {"pix_fmt": "--pix-fmt", "threads": "--encoder-threads", "start_s": "--start", "duration_s": "--duration"}
# the others: --codec, --crf, --preset, --outscale, --width, --height
_INPUT = ("input", "size", "mtime_ns")


@dataclass
class Claim:
    """A work folder made ready: the engine of the segments kept in it (None: none kept), and what to tell."""

    made_by: MadeBy | None = None
    notes: list[str] = field(default_factory=list)


def finished_segments(folder: Path) -> list[Path]:
    """The whole segments in a work folder (one being written ends in ``.part.mp4``)."""
    return sorted(p for p in folder.glob("seg-*.mp4") if not p.name.endswith(".part.mp4"))


def claim(
    folder: Path,
    fingerprint: dict,
    target: Path,
    *,
    unfinished: Unfinished = "keep",
    made_by: MadeBy | None = None,
) -> Claim:
    """Make ``folder`` the work folder of the job ``fingerprint`` describes, keeping what it can continue.

    ``VideoError`` (``MixedEngines`` for another engine), with nothing touched, when the folder holds
    finished segments this run cannot continue and ``unfinished`` is ``keep`` or ``resume``. ``made_by``: this run's
    engine, when known before any segment is made (a local run).
    """
    result = Claim()
    if folder.is_dir():
        finished = len(finished_segments(folder))
        previous = _read(folder / RECORD)
        count = _count(finished, previous)
        if unfinished == "restart":
            why = ""
        else:
            why = _mismatch(previous, fingerprint)
            if why is None and finished:
                why = _other_engine(read_made_by(folder), made_by, refuse=unfinished != "replace")
            if why is None:
                if finished:
                    result.made_by = read_made_by(folder)
                if finished and unfinished != "resume":  # going on unasked: say so, and how not to
                    result.notes.append(
                        f"{target}: continuing the unfinished job there, {count} segments are finished "
                        f"(add --restart to discard them)"
                    )
                return result
            if finished and unfinished != "replace":
                raise VideoError(
                    f"{target}: the unfinished job there ({count} segments finished) does not match this run: "
                    f"{why}; continue it with the command that made it, or add --restart to discard it"
                )
        shutil.rmtree(folder)
        if finished:
            flag = "--restart" if unfinished == "restart" else f"--overwrite: {why}"
            result.notes.append(f"{target}: discarded the unfinished job there, {count} segments finished ({flag})")
    from upscaler.io import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / RECORD, json.dumps(fingerprint, indent=2))  # a crash leaves the whole record or none
    return result


def recorded_encoding(folder: Path) -> dict:
    """The encoding settings an unfinished job in ``folder`` was made with (``{}``: none recorded)."""
    previous = _read(folder / RECORD)
    encode = previous.get("encode") if previous else None
    return encode if isinstance(encode, dict) else {}


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _count(finished: int, previous: dict | None) -> str:
    planned = previous.get("segments") if previous else None
    return f"{finished} of {len(planned)}" if isinstance(planned, list) else str(finished)


def _shown(value) -> str:
    return "default" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _mismatch(previous: dict | None, fingerprint: dict) -> str | None:
    """Why a recorded job is not this run's (None: it is), in words that say how to continue it."""
    if previous == fingerprint:
        return None
    if previous is None:
        return f"its record ({RECORD}) is missing or unreadable"
    if previous.get("version") != fingerprint.get("version"):
        return "it was made by another version of upscaler"
    if any(previous.get(key) != fingerprint.get(key) for key in _INPUT):
        return "it was made from another input, or the input has changed since"
    settings = []
    for key, value in fingerprint.items():
        old = previous.get(key)
        if key in ("version", "segments", *_INPUT) or old == value:
            continue  # the segment plan follows from the input and --segment-seconds
        if key == "encode" and isinstance(old, dict) and isinstance(value, dict):
            settings += [f"{_FLAGS.get(k, '--' + k)} {_shown(old.get(k))}" for k in value if old.get(k) != value[k]]
        elif key == "segment_s":
            settings.append(f"--segment-seconds {_shown(old)}")
        elif key == "temporal":  # follows from the model, unless another version of upscaler fed it otherwise
            if previous.get("model") == fingerprint.get("model"):
                settings.append("another temporal setup (motion or cut detection) of another version of upscaler")
        else:
            settings.append(f"--{key.replace('_', '-')} {_shown(old)}")
    if settings:
        return f"it was made with other settings ({', '.join(settings)})"
    return "it was planned in other segments"


def _other_engine(recorded: MadeBy | None, made_by: MadeBy | None, *, refuse: bool) -> str | None:
    """Why finished segments cannot join this run's (None: they can); ``MixedEngines`` for another engine if
    ``refuse``: its message names the options that continue the job."""
    if recorded is None:
        return "it does not record which engine made its segments"
    if made_by is None or made_by == recorded:
        return None
    if refuse:
        check_same(recorded, made_by)
    return f"its segments were made by another engine ({recorded})"
