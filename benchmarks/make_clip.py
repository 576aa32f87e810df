"""Make a smaller copy of a real clip for CPU video benchmarks: frames resized, audio copied as it is.

    python benchmarks/make_clip.py ../shared/data/video/concourse_720p50_audio.avi /tmp/concourse_320x180.mkv 320x180

Runs on PyAV only; the output keeps every frame's timestamp.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av

from upscaler.video.probe import display_times, probe


def make_clip(source: Path, target: Path, size: tuple[int, int], seconds: float | None = None) -> int:
    """``source``'s frames (the first ``seconds``, or all) resized to ``size`` (area) with that span's audio
    copied as it is; returns the number of frames written."""
    width, height = size
    info = probe(Path(source))
    times = display_times(Path(source), info.time_base, info.rate)  # AVI frames carry no display order
    keep = lambda t: seconds is None or t * info.time_base < seconds  # noqa: E731
    count = written = 0
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        vin = src.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.codec_context.time_base = vin.time_base
        vout.time_base = vin.time_base
        vout.codec_context.options = {"crf": "16", "preset": "slow"}
        audio = {s.index: out.add_stream_from_template(s, opaque=True) for s in src.streams.audio}
        for packet in src.demux(vin, *src.streams.audio):
            if packet.stream.type == "audio":
                if packet.size and (seconds is None or (packet.pts is not None and keep(packet.pts))):
                    packet.stream = audio[packet.stream.index]
                    out.mux(packet)
                continue
            for frame in packet.decode():
                if count < len(times) and keep(times[count]):
                    small = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
                    small.pts, small.time_base = times[count], vin.time_base
                    out.mux(vout.encode(small))
                    written += 1
                count += 1
        out.mux(vout.encode(None))
    return written


def main(source: str, target: str, size: str) -> None:
    width, height = (int(v) for v in size.split("x"))
    make_clip(Path(source), Path(target), (width, height))
    print(f"wrote {Path(target)}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
