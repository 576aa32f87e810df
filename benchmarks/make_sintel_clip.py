"""A second real-content clip for the temporal stability figure, made from CC-BY frames of the open movie Sintel.

    python benchmarks/make_sintel_clip.py ../shared/data/val/rendered/sintel_alley_1_raft runs/sintel-alley-pan.mp4

Source: MPI-Sintel ``alley_1`` frames 16-25 (clean pass, 1024x436), rendered from
the Blender Foundation's open movie *Sintel* (durian.blender.org, CC BY 3.0,
(c) copyright Blender Foundation); the copy in ``../shared/data/val/rendered``
says where it came from. No temporal model was trained or tuned on it.

The clip: each of the ten frames is held for ``hold`` output frames while a
virtual camera pans slowly across it and zooms in a little (``cv2.warpAffine``,
Lanczos, sub-pixel steps), so the clip has both the scene's own motion (at the
frame changes) and a smooth camera; area-reduced to ``size``, H.264 CRF 16
(yuv420p), 24 frames/s. Deterministic: the same frames make the same bytes.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from upscaler.io import list_images, read_image  # noqa: E402
from upscaler.pipeline import to_rgb8  # noqa: E402


def camera(t: int, total: int, size: tuple[int, int], source: tuple[int, int]) -> np.ndarray:
    """The 2 x 3 affine map of output frame ``t``: a pan across 12 % of the width and a 6 % zoom in."""
    (w, h), (sw, sh) = size, source
    zoom = (w / (0.8 * sw)) * (1.0 + 0.06 * t / total)
    cx = sw * (0.44 + 0.12 * t / total)
    cy = sh * 0.5
    return np.array([[zoom, 0.0, w / 2 - zoom * cx], [0.0, zoom, h / 2 - zoom * cy]], np.float64)


def make(folder: Path, target: Path, size: tuple[int, int] = (320, 136), hold: int = 6) -> int:
    """Write the clip; returns its frame count."""
    frames = [to_rgb8(read_image(p)) for p in list_images(folder)]
    total = len(frames) * hold
    with av.open(str(target), "w", format="mp4", container_options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 24)
        stream.codec_context.thread_count = 1
        stream.codec_context.options = {"crf": "16", "preset": "slow"}
        for t in range(total):
            source = frames[t // hold]
            big = (size[0] * 4, size[1] * 4)  # warp at 4x, then area-reduce: no aliasing from the warp
            m = camera(t, total, big, (source.shape[1], source.shape[0]))
            warped = cv2.warpAffine(source, m, big, flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT101)
            image = cv2.resize(warped, size, interpolation=cv2.INTER_AREA)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return total


if __name__ == "__main__":
    count = make(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{sys.argv[2]}: {count} frames")
