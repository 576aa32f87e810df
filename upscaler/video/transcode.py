"""Upscale one segment: decode, infer in batches and encode, overlapped in three threads.

The decoder and the encoder run in their own threads, the engine in the
caller's; bounded queues between them keep memory flat for any length and
let the engine take the next batch while the previous one is encoded.
PyAV and the engines release the GIL in their native code, so the stages
really overlap. Frames keep their decoded timestamps; 8-bit sources go
through RGB24 and deeper ones through RGB48, converted with the source's
own matrix and range and tagged the same on the way out.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from upscaler.outsize import OutputSize, fit
from upscaler.video.probe import VideoError, VideoInfo, open_input
from upscaler.video.segments import Segment

__all__ = [
    "EncodeSettings",
    "SegmentStats",
    "choose_pix_fmt",
    "decoded_rgb",
    "encodable_frame",
    "exact_clock",
    "upscale_segment",
]

_END = object()


@dataclass(frozen=True)
class EncodeSettings:
    """How the upscaled video is encoded."""

    codec: str = "libx264"
    crf: int | None = 18  #: constant quality (libx264/libx265/libvpx-vp9/libaom/svt); None: the codec's default
    preset: str | None = None  #: encoder speed preset (e.g. medium, slow)
    pix_fmt: str | None = None  #: None: keep the source's where the codec allows (10-bit stays 10-bit)
    threads: int | None = 2  #: encoder threads: x264 is deterministic at a fixed count (benchmarks/encoder_threads.py),
    #: so resumed and distributed segments equal an uninterrupted run's. None: each job picks (``job.encoder_threads``)
    start_s: float = 0.0  #: the part of the input made: from this many seconds after its first frame ...
    duration_s: float | None = None  #: ... for this long (None: to the end); audio and subtitles cut to match
    outscale: float | None = None  #: output size (``upscaler.outsize``): a factor ...
    width: int | None = None  #: ... or a width and/or height (one alone keeps the aspect ratio)
    height: int | None = None

    def frame_size(self, width: int, height: int, scale: int) -> tuple[int, int]:
        """The encoded frame size for a ``width x height`` source upscaled ``scale`` times: the model's, or the
        size asked for, each side rounded down to even (4:2:0 chroma takes pixel pairs; 2 at least)."""
        asked = OutputSize(self.outscale, self.width, self.height)
        if not asked.given:
            return width * scale, height * scale
        out_w, out_h = asked.of(width, height, scale)
        return max(2, out_w - out_w % 2), max(2, out_h - out_h % 2)


@dataclass
class SegmentStats:
    frames: int = 0
    engine_s: float = 0.0  #: time in the engine (busy), to compare with the wall time


def choose_pix_fmt(codec: str, source: str, bit_depth: int, requested: str | None) -> str:
    """The output pixel format: the request, else the source's if the encoder takes it, else 8 or 10-bit 4:2:0."""
    import av

    try:
        formats = [f.name for f in av.codec.Codec(codec, "w").video_formats or []]
    except Exception:  # unknown codec
        raise VideoError(f"unsupported codec {codec!r} (not an encoder this PyAV build has)") from None
    if requested:
        if formats and requested not in formats:
            raise VideoError(f"{codec} cannot encode {requested}; it takes {', '.join(formats)}")
        return requested
    if not formats or source in formats:
        return source
    if bit_depth > 8:
        for deep in ("yuv420p10le", "yuv422p10le", "yuv444p10le", "p010le"):
            if deep in formats:
                return deep
    return "yuv420p" if "yuv420p" in formats else formats[0]


def exact_clock(info: VideoInfo) -> dict[str, str]:
    """MP4 muxer options that keep every timestamp of the input's clock exactly.

    MP4 edit lists count in the movie's clock, by default milliseconds: a segment that starts at 7/3 s
    came back 0.33 ms early, and the output's average frame rate was then no longer the input's.
    """
    clock = info.time_base.denominator
    return {"movie_timescale": str(clock)} if 0 < clock < 2**31 else {}


def _sws_colorspace(av_colorspace: int) -> int:
    """swscale's matrix constant for an AVColorSpace (unspecified: BT.601, swscale's default)."""
    return {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}.get(av_colorspace, 5)


def _conversion(info: VideoInfo):
    from av.video.reformatter import ColorRange, Colorspace

    matrix = Colorspace(_sws_colorspace(info.colorspace))
    rng = ColorRange(info.color_range) if info.color_range in (1, 2) else ColorRange(1)
    return ("rgb48le" if info.bit_depth > 8 else "rgb24"), matrix, rng


def decoded_rgb(frame, info: VideoInfo) -> np.ndarray:
    """A decoded frame as the engine gets it: ``H x W x 3`` RGB, uint8 (uint16 for deeper sources), converted
    with the source's own matrix and range; a copy in memory of its own (the decoder reuses its buffers)."""
    rgb, matrix, rng = _conversion(info)
    converted = frame.reformat(format=rgb, src_colorspace=matrix, src_color_range=rng, threads=1)
    return np.array(converted.to_ndarray(), copy=True)


def encodable_frame(image: np.ndarray, info: VideoInfo, pix_fmt: str):
    """An upscaled ``H x W x 3`` RGB image as the encoder gets it: a PyAV frame in ``pix_fmt``, converted with
    the source's matrix and range (no timestamp yet)."""
    import av

    rgb, matrix, rng = _conversion(info)
    frame = av.VideoFrame.from_ndarray(image, format=rgb)
    return frame.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range=rng, threads=1)


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return _END


def upscale_segment(
    info: VideoInfo,
    segment: Segment,
    upscaler,
    out_path: Path,
    settings: EncodeSettings,
    *,
    batch: int = 1,
    on_frame: Callable[[int], None] | None = None,
    retime: list[int] | None = None,
) -> SegmentStats:
    """Write the upscaled frames of ``segment`` (video only) to ``out_path`` (MP4); returns frames and engine time.

    A decoder thread, this thread (the engine) and an encoder thread, joined by bounded queues.
    ``retime``: timestamps to give the decoded frames in order (one segment only), for containers whose
    frames carry no reliable ones.
    """
    pipe = _Pipe(batch)
    size = settings.frame_size(info.width, info.height, upscaler.scale)  # fit: a no-op at the model's own size
    pix_fmt = choose_pix_fmt(settings.codec, info.pix_fmt, info.bit_depth, settings.pix_fmt)
    stats = SegmentStats()
    # daemon threads: an interrupt at any moment can never leave the process waiting on them at exit
    threads = [
        threading.Thread(target=_decode, args=(pipe, info, segment, retime), name="decode", daemon=True),
        threading.Thread(target=_encode, args=(pipe, info, settings, out_path, size, pix_fmt, stats, on_frame),
                         name="encode", daemon=True),
    ]  # fmt: skip
    try:
        for t in threads:
            t.start()
        _upscale_frames(pipe, upscaler, batch, size, stats)
    except BaseException:
        pipe.stop.set()
        raise
    finally:
        try:
            for t in threads:
                if t.ident is not None:
                    t.join()
        except BaseException:  # interrupted while waiting: tell the threads to stop, then go
            pipe.stop.set()
            raise
    if pipe.failures:
        raise pipe.failures[0]
    return stats


class _Pipe:
    """What the three stages of ``upscale_segment`` share: two bounded queues, a stop flag, the failures."""

    def __init__(self, batch: int) -> None:
        self.stop = threading.Event()
        self.failures: list[BaseException] = []
        self.decoded: queue.Queue = queue.Queue(maxsize=2 * batch + 2)
        self.upscaled: queue.Queue = queue.Queue(maxsize=2 * batch + 2)

    def fail(self, exc: BaseException) -> None:
        """A stage failed: hand ``exc`` to the caller and stop the others."""
        self.failures.append(exc)
        self.stop.set()


def _upscale_frames(pipe: _Pipe, upscaler, batch: int, size: tuple[int, int], stats: SegmentStats) -> None:
    """The engine stage: batches of decoded frames through ``upscaler``, fitted to ``size``, to the encoder."""
    done = False
    while not done and not pipe.stop.is_set():
        items = []
        while len(items) < batch:
            item = _get(pipe.decoded, pipe.stop)
            if item is _END:
                done = True
                break
            items.append(item)
        if items:
            started = time.perf_counter()
            outputs = upscaler.upscale_batch([image for _, image in items])
            stats.engine_s += time.perf_counter() - started
            for (pts, _), out in zip(items, outputs):
                if not _put(pipe.upscaled, (pts, np.ascontiguousarray(fit(out, *size))), pipe.stop):
                    break
    _put(pipe.upscaled, _END, pipe.stop)


def _decode(pipe: _Pipe, info: VideoInfo, segment: Segment, retime: list[int] | None) -> None:
    """The decoder stage: the segment's frames (RGB, with their timestamps) into ``pipe.decoded``."""
    try:
        with open_input(info.path) as container:
            stream = container.streams.video[0]
            # one decoder thread, as for the encoder: threaded decoding was seen to give different
            # frames right after a seek under load, and resumed segments must equal one run
            stream.codec_context.thread_count = 1
            if segment.index:
                container.seek(segment.seek, stream=stream, backward=True)
            for count, frame in enumerate(container.decode(stream)):
                pts = frame.pts if retime is None else (retime[count] if count < len(retime) else None)
                if pts is None or pts < segment.start:
                    continue
                if segment.end is not None and pts >= segment.end:
                    break
                if not _put(pipe.decoded, (pts, decoded_rgb(frame, info)), pipe.stop):
                    return
    except BaseException as exc:  # handed to the caller
        pipe.fail(exc)
    finally:
        _put(pipe.decoded, _END, pipe.stop)


def _encoder_options(settings: EncodeSettings) -> dict[str, str]:
    options = {}
    if settings.crf is not None:
        options["crf"] = str(settings.crf)
    if settings.preset:
        options["preset"] = settings.preset
    if settings.codec == "libvpx-vp9" and settings.crf is not None:
        options["b"] = "0"  # constant quality mode
    return options


def _encode(pipe: _Pipe, info: VideoInfo, settings: EncodeSettings, out_path: Path, size: tuple[int, int],
            pix_fmt: str, stats: SegmentStats, on_frame: Callable[[int], None] | None) -> None:  # fmt: skip
    """The encoder stage: ``pipe.upscaled`` into an MP4 at ``out_path``, with the source's clock and colours."""
    import av

    try:
        options = {"fflags": "+bitexact", **exact_clock(info)}
        with av.open(str(out_path), "w", format="mp4", container_options=options) as container:
            stream = container.add_stream(settings.codec, rate=info.rate or 25)
            ctx = stream.codec_context
            ctx.width, ctx.height = size
            ctx.pix_fmt = pix_fmt
            ctx.thread_count = settings.threads
            ctx.time_base = info.time_base
            stream.time_base = info.time_base
            ctx.color_primaries, ctx.color_trc = info.color_primaries, info.color_trc
            ctx.colorspace, ctx.color_range = info.colorspace, info.color_range
            ctx.options = _encoder_options(settings)
            while (item := _get(pipe.upscaled, pipe.stop)) is not _END:
                pts, image = item
                frame = encodable_frame(image, info, pix_fmt)
                frame.pts, frame.time_base = pts, info.time_base
                for packet in stream.encode(frame):
                    container.mux(packet)
                stats.frames += 1
                if on_frame:
                    on_frame(1)
            if not pipe.stop.is_set():
                for packet in stream.encode(None):
                    container.mux(packet)
    except BaseException as exc:  # handed to the caller
        pipe.fail(exc)
