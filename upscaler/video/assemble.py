"""Join the encoded segments into the final file, with the input's audio and subtitle packets copied.

Nothing is re-encoded here: video packets come from the segment files,
audio and subtitle packets straight from the input, merged in time order so
the muxer never buffers much. Display rotation is set on the new video
stream. Where two segments meet, B-frame reordering can make the next
segment's first decode timestamps fall before the previous segment's last;
those are nudged forward by a tick (presentation timestamps never change).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

from upscaler.video.probe import VideoError, VideoInfo, open_input
from upscaler.video.transcode import exact_clock

__all__ = ["assemble"]

#: Outputs written by FFmpeg's MP4 muxer, whose edit lists count in a clock of its own
_MP4_FAMILY = {".mp4", ".m4v", ".mov"}


def _timed(packets, order: int) -> Iterator[tuple[float, int, int, object]]:
    for i, packet in enumerate(packets):
        stamp = packet.dts if packet.dts is not None else packet.pts
        if packet.size == 0 or stamp is None:
            continue
        yield float(stamp * packet.time_base), order, i, packet


def _segment_packets(paths: Sequence[Path]) -> Iterator:
    for path in paths:
        with open_input(path) as container:
            yield from container.demux(container.streams.video[0])


def _shift(packet, offset: float) -> None:
    """Move a packet ``offset`` seconds earlier (a trimmed output starts at 0)."""
    ticks = round(offset / packet.time_base)
    if packet.pts is not None:
        packet.pts -= ticks
    if packet.dts is not None:
        packet.dts -= ticks


def _within(packet, window: tuple[float, float | None]) -> bool:
    stamp = packet.pts if packet.pts is not None else packet.dts
    t = float(stamp * packet.time_base)
    return window[0] <= t and (window[1] is None or t < window[1])


def _kept(packet, window: tuple[float, float | None]) -> bool:
    """Whether a trimmed output keeps ``packet``: one that starts inside ``window``, or a subtitle cue with a
    duration on screen at its start (moved to the start). A cue that outlasts the window is cut at its end."""
    if packet.stream.type != "subtitle" or not packet.duration or packet.pts is None:
        return _within(packet, window)
    tb = packet.time_base
    start, end = round(window[0] / tb), None if window[1] is None else round(window[1] / tb)
    first, last = packet.pts, packet.pts + packet.duration
    if last <= start or (end is not None and first >= end):
        return False
    first, last = max(first, start), last if end is None else min(last, end)
    packet.pts = packet.dts = first
    packet.duration = last - first
    return True


def assemble(
    info: VideoInfo, segments: Sequence[Path], out_path: Path, window: tuple[float, float | None] | None = None
) -> None:
    """Write ``out_path``: the segments' video, then every audio and subtitle stream of the input, copied.

    ``window``: the source seconds kept (a trimmed job): audio and subtitle packets outside it are left out (a
    cue on screen at its start is kept, from the start), and every stream starts that much earlier (audio is
    cut at packet boundaries, tens of ms)."""
    import av

    # timestamps are kept as they are: no shift to make B-frame decode times non-negative
    options = {"avoid_negative_ts": "disabled", "fflags": "+bitexact"}
    if out_path.suffix.lower() in _MP4_FAMILY:
        options.update(exact_clock(info))
    try:
        out = av.open(str(out_path), "w", container_options=options)
    except (av.error.FFmpegError, ValueError) as exc:
        raise VideoError(f"{out_path}: cannot write this container ({exc})") from None
    with out, open_input(info.path) as source, open_input(segments[0]) as first:
        video = out.add_stream_from_template(first.streams.video[0], opaque=True)
        video.time_base = info.time_base
        # the rate the stream states (Matroska's default duration, the average rate): a constant-rate source's
        # own; none for a variable-rate one, whose frames keep their own times (else the encoder's clock, e.g.
        # 12288 fps, would be stated)
        video.codec_context.framerate = info.rate if info.constant_rate and info.rate else Fraction(0, 1)
        if info.rotation:
            video.set_display_rotation(info.rotation)
        copied = {}
        for stream in [*source.streams.audio, *source.streams.subtitles]:
            try:
                target = out.add_stream_from_template(stream, opaque=True)  # packets only: no codec
            except (av.error.FFmpegError, ValueError) as exc:
                raise VideoError(f"{out_path.suffix} cannot hold the {stream.type} stream ({exc}); try .mkv") from None
            for key, value in stream.metadata.items():
                target.metadata[key] = value
            copied[stream.index] = target
        others = source.demux(*[source.streams[i] for i in copied]) if copied else iter(())
        if window is not None:
            others = (p for p in others if p.size and (p.pts is not None or p.dts is not None) and _kept(p, window))
        last_dts = None
        for _, order, _, packet in heapq.merge(_timed(_segment_packets(segments), 0), _timed(others, 1)):
            if order == 0:
                packet.stream = video
                if last_dts is not None and packet.dts is not None and packet.dts <= last_dts:
                    packet.dts = last_dts + 1
                    if packet.pts is not None and packet.pts < packet.dts:
                        packet.pts = packet.dts
                last_dts = packet.dts
            else:
                packet.stream = copied[packet.stream.index]
            if window is not None:
                _shift(packet, window[0])
            out.mux(packet)
