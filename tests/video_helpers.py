"""Small real clips for the video tests, written with PyAV: moving pictures, a tone, optional subtitles."""

from __future__ import annotations

from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_clip(
    path: Path,
    *,
    frames: int = 24,
    size: tuple[int, int] = (48, 32),
    fps: int = 12,
    audio: bool = True,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    vfr: bool = False,
    gop: int = 8,
    subtitles: bool = False,
    rotation: int = 0,
    colour: tuple[int, int, int, int] | None = None,
) -> Path:
    """Write a clip; with ``vfr`` frame durations alternate between one and two ticks."""
    import av

    w, h = size
    tb = Fraction(1, fps * 2)
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = w, h, pix_fmt
        video.codec_context.time_base = tb
        video.time_base = tb
        video.codec_context.options = {"g": str(gop), "crf": "20"}
        if colour:
            ctx = video.codec_context
            ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = colour
        if rotation:
            video.set_display_rotation(rotation)
        subs = out.add_mux_stream("subrip") if subtitles else None
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=8000)
            sound.codec_context.layout = "mono"
        yy, xx = np.mgrid[0:h, 0:w]
        pts = 0
        deep = "10" in pix_fmt
        for i in range(frames):
            rgb = np.stack([(xx * 5 + i * 7) % 256, (yy * 7 + i * 3) % 256, ((xx + yy) * 3 + i * 11) % 256], -1)
            if deep:
                frame = av.VideoFrame.from_ndarray((rgb.astype(np.uint16) * 257), format="rgb48le")
            else:
                frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts, frame.time_base = pts, tb
            pts += (1 + (i % 2)) if vfr else 2
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if subs is not None:
            for j, text in enumerate(["Hello", "upscaled", "world"]):
                cue = av.Packet(text.encode())
                cue.pts = cue.dts = j * 300
                cue.duration, cue.time_base, cue.stream = 250, Fraction(1, 1000), subs
                out.mux(cue)
        if sound is not None:
            _tone(out, sound, int(8000 * pts * tb))
    return path


def video_packets(path: Path) -> list[tuple[int, int | None]]:
    """(pts, dts) of every video packet."""
    import av

    with av.open(str(path)) as c:
        return [(p.pts, p.dts) for p in c.demux(c.streams.video[0]) if p.size]


def frame_times(path: Path) -> list[float]:
    """Presentation times (s) of every decoded video frame."""
    import av

    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(c.streams.video[0])]


def audio_payloads(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def frames_rgb(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def subtitle_payloads(path: Path) -> list[tuple[float, bytes]]:
    import av

    with av.open(str(path)) as c:
        if not c.streams.subtitles:
            return []
        return [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(c.streams.subtitles[0]) if p.size]


def subtitle_cues(path: Path) -> list[tuple[float, float]]:
    """``(start, duration)`` in seconds of each subtitle cue."""
    import av

    with av.open(str(path)) as c:
        return [(float(p.pts * p.time_base), float(p.duration * p.time_base))
                for p in c.demux(c.streams.subtitles[0]) if p.size]  # fmt: skip


def video_span(path: Path) -> float:
    """Seconds from the first frame's start to the last frame's end."""
    import av

    with av.open(str(path)) as c:
        frames = [(f.pts, f.duration or 0, f.time_base) for f in c.decode(c.streams.video[0])]
    (first, _, tb), (last, duration, _) = frames[0], frames[-1]
    return float((last + duration - first) * tb)


def _tone(out, sound, samples: int) -> None:
    """Encode and mux ``samples`` of a 440 Hz tone at 8 kHz into ``sound``."""
    import av

    t = np.arange(samples) / 8000.0
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    for start in range(0, samples, 1024):
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp",
                                           layout="mono")  # fmt: skip
        chunk.sample_rate, chunk.pts = 8000, start
        for packet in sound.encode(chunk):
            out.mux(packet)
    for packet in sound.encode(None):
        out.mux(packet)


def make_audio_only(path: Path, samples: int = 4096) -> Path:
    """A file with one AAC stream and no video."""
    import av

    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=8000)
        sound.codec_context.layout = "mono"
        _tone(out, sound, samples)
    return path


def make_clip_from(path: Path, images: list[np.ndarray], *, fps: int = 12, gop: int = 6) -> Path:
    """Write RGB ``images`` as an H.264 clip (no audio) with a keyframe every ``gop`` frames exactly.

    x264's own scene-cut keyframes are off, so a cut in the pictures never moves the segment plan.
    """
    import av

    h, w = images[0].shape[:2]
    tb = Fraction(1, fps * 2)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.codec_context.time_base = tb
        video.time_base = tb
        video.codec_context.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "crf": "18"}
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = 2 * i, tb
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    return path


def panned(photo: np.ndarray, size: tuple[int, int], count: int, step: tuple[int, int] = (1, 1)) -> list[np.ndarray]:
    """``count`` windows of ``size`` (w, h) on ``photo``, moving ``step`` (dx, dy) pixels a frame: a camera pan."""
    w, h = size
    dx, dy = step
    return [np.ascontiguousarray(photo[i * dy : i * dy + h, i * dx : i * dx + w, :3]) for i in range(count)]


def frames_native(path: Path) -> list[np.ndarray]:
    """Every decoded video frame in its own pixel format (YUV planes): exact through a lossless encoder."""
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray() for f in c.decode(c.streams.video[0])]


def decoded_frames(path: Path) -> list[tuple[int, np.ndarray]]:
    """``(pts, RGB)`` of every frame in display order, converted exactly as the video pipeline converts them."""
    import av

    from upscaler.video.probe import probe
    from upscaler.video.transcode import decoded_rgb

    info = probe(path)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.codec_context.thread_count = 1
        return sorted(((f.pts, decoded_rgb(f, info)) for f in c.decode(stream)), key=lambda item: item[0])


@contextmanager
def ray_cluster(*, head_cpus: int = 2, workers: int = 0, worker_cpus: int = 2, env: dict | None = None):
    """A real local Ray cluster started with this process's environment (and ``env``): a head node with
    ``head_cpus`` CPUs and ``workers`` worker nodes (their own raylet processes, on loopback) with
    ``worker_cpus`` each; ``(address, auth env)``.

    Token authentication (on by default in recent Ray): the nodes and their clients share a token by
    environment. Stopped on exit.
    """
    import os
    import secrets
    import shutil
    import subprocess
    import sys

    from tests.server_helpers import free_port

    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    full_env = {**os.environ, **auth, **(env or {})}
    start = [ray, "start", "--head", f"--port={port}", f"--num-cpus={head_cpus}", "--include-dashboard=false"]
    try:
        subprocess.run(start, check=True, env=full_env, capture_output=True, timeout=300)
        for _ in range(workers):
            join = [ray, "start", f"--address=127.0.0.1:{port}", f"--num-cpus={worker_cpus}"]
            subprocess.run(join, check=True, env=full_env, capture_output=True, timeout=300)
        yield f"127.0.0.1:{port}", auth
    finally:
        subprocess.run([ray, "stop", "--force"], env=full_env, capture_output=True, timeout=300)
