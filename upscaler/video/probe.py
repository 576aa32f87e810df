"""What a video file holds: its video stream's geometry, timing, colour and rotation; its other streams."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

__all__ = [
    "UNTIMED_CONTAINERS",
    "VideoError",
    "VideoInfo",
    "constant_rate",
    "display_times",
    "keyframes",
    "open_input",
    "packet_times",
    "probe",
]

#: Demuxers whose packets carry no real presentation order (AVI, raw bitstreams): frames are given the
#: sorted packet timestamps in the order the decoder outputs them (display order).
UNTIMED_CONTAINERS = {"avi", "h264", "hevc", "m4v", "mpegvideo", "asf"}


class VideoError(ValueError):
    """A file that cannot be upscaled as a video: the message is one line for the user."""


@dataclass(frozen=True)
class VideoInfo:
    """The input's video stream and what else the file carries."""

    path: Path
    container: str  #: demuxer name
    codec: str  #: video codec
    width: int
    height: int
    pix_fmt: str
    bit_depth: int  #: bits per sample of the first component
    time_base: Fraction
    rate: Fraction | None  #: average frame rate, when known
    frames: int  #: frame count from the header (0: unknown)
    duration_s: float
    color_primaries: int
    color_trc: int
    colorspace: int
    color_range: int
    rotation: int  #: display rotation in degrees (counter-clockwise)
    audio: int  #: audio streams (copied)
    subtitles: int  #: subtitle streams (copied)
    constant_rate: bool = False  #: every frame 1/rate after the one before: the output is written at ``rate``


def open_input(path: Path):
    """``av.open`` for reading, with a one-line ``VideoError`` for files that are not media."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        return av.open(str(path), "r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(f"{path}: not a video file ({exc.__class__.__name__})") from None


def probe(path: Path) -> VideoInfo:
    """Describe ``path``; ``VideoError`` if it is not a video or has no video stream."""
    import av

    with open_input(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx.width < 1 or ctx.height < 1 or ctx.format is None:
            raise VideoError(f"{path}: video stream has no decodable picture ({ctx.name})")
        rotation = 0
        for frame in container.decode(stream):  # the first frame carries the display matrix
            rotation = round(frame.rotation or 0) % 360
            break
        duration = container.duration / av.time_base if container.duration else 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        return VideoInfo(
            path=Path(path),
            container=container.format.name,
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            pix_fmt=ctx.format.name,
            bit_depth=ctx.format.components[0].bits,
            time_base=stream.time_base,
            rate=stream.average_rate,
            frames=stream.frames or 0,
            duration_s=duration,
            color_primaries=int(ctx.color_primaries),
            color_trc=int(ctx.color_trc),
            colorspace=int(ctx.colorspace),
            color_range=int(ctx.color_range),
            rotation=rotation,
            audio=len(container.streams.audio),
            subtitles=len(container.streams.subtitles),
        )


def packet_times(path: Path) -> tuple[list[int], list[int]]:
    """Timestamps (video time base) of every video packet and of the keyframes, each sorted; nothing is decoded."""
    with open_input(path) as container:
        stream = container.streams.video[0]
        stamps, keys = [], []
        for packet in container.demux(stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.size and stamp is not None:
                stamps.append(stamp)
                if packet.is_keyframe:
                    keys.append(stamp)
        return sorted(stamps), sorted(set(keys))


def keyframes(path: Path) -> list[int]:
    """Timestamps (video time base) of the keyframes, from the packets alone (nothing is decoded)."""
    return packet_times(path)[1]


def constant_rate(stamps: Sequence[int], time_base: Fraction, rate: Fraction | None) -> bool:
    """Whether sorted frame timestamps lie one frame of ``rate`` apart (within the tick a container rounds to).

    The header's rate alone cannot tell: Matroska, for one, states a default duration for variable-rate
    video too.
    """
    if not rate or rate <= 0 or len(stamps) < 2:
        return False
    step = 1 / (rate * time_base)  # ticks per frame; not whole where the clock is coarser than the rate (ms)
    return all(abs(b - a - step) < 1 for a, b in pairwise(stamps))


def display_times(path: Path, time_base, rate) -> list[int]:
    """Presentation timestamps of every frame in display order, for containers without reliable ones.

    The packets' timestamps, sorted; where packets have none, a grid at the frame rate.
    """
    with open_input(path) as container:
        stream = container.streams.video[0]
        stamps = [p.pts if p.pts is not None else p.dts for p in container.demux(stream) if p.size]
    if stamps and all(s is not None for s in stamps):
        return sorted(stamps)
    step = (1 / (rate or 25)) / time_base
    return [round(i * step) for i in range(len(stamps))]
