"""Synthetic rendered sequences: what a game hands a temporal upscaler, made from still photos.

A photo is the *scene* (at ``zoom`` source pixels per high-resolution pixel).
A camera moves over it (pan with sub-pixel velocity, zoom, small rotation),
an optional sprite layer with a hard alpha edge moves on its own across the
screen (occlusion and disocclusion), the exposure may drift, and the scene
may cut to another photo. For every frame this module renders:

- ``lr``: what a renderer without anti-aliasing draws: one point sample per
  low-resolution pixel, at ``(x + 0.5 + jx, y + 0.5 + jy)`` low-resolution
  pixels from the top-left corner, with the jitter ``(jx, jy)`` of a
  Halton(2, 3) sequence (``jitter_sequence``). Staircases and sub-pixel
  features that come and go: aliasing, as a real renderer makes it.
- ``hr``: the reference: the same scene anti-aliased at ``scale`` times the
  resolution (``SUPERSAMPLES``^2 samples per pixel, box-averaged).
- ``motion``: for each low-resolution pixel centre, where the same surface
  was in the previous frame, relative to here, in low-resolution pixels
  (previous = current + motion), jitter excluded: the conventions of
  ``TemporalUpscaler`` (DESIGN.md section 9). After a cut it is zero.
- ``dynamic``: high-resolution mask of the pixels the moving layer covers
  now or covered in the previous frame (where history is wrong or missing);
  ``disoccluded``: those it covered in the previous frame and no longer does.
- ``depth``: linear depth at every sample (the scene at ``depths[0]``, the
  layer in front at ``depths[1]``), as a renderer's depth buffer.

Pure numpy and OpenCV (``cv2.remap``): the benchmark harness and the tests
use it without torch, and training draws its sequences from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

__all__ = [
    "SUPERSAMPLES",
    "Camera",
    "Layer",
    "SequenceFrame",
    "SequenceSpec",
    "halton",
    "jitter_sequence",
    "make_sequence",
    "random_spec",
]

#: Samples per axis per high-resolution pixel of the anti-aliased reference.
SUPERSAMPLES = 4


def halton(index: int, base: int) -> float:
    """The ``index``-th (from 1) element of the van der Corput sequence in ``base``: in (0, 1)."""
    result, f, i = 0.0, 1.0, index
    while i > 0:
        f /= base
        result += f * (i % base)
        i //= base
    return result


def jitter_sequence(length: int = 16) -> list[tuple[float, float]]:
    """Halton(2, 3) jitter offsets in [-0.5, 0.5) low-resolution pixels, as FSR 2 and DLSS integrations use."""
    return [(halton(i + 1, 2) - 0.5, halton(i + 1, 3) - 0.5) for i in range(length)]


@dataclass(frozen=True)
class Camera:
    """Where the camera looks at frame 0 and how it moves per frame (all in source pixels and radians)."""

    center: tuple[float, float]  #: source point at the screen centre
    zoom: float = 1.0  #: source pixels per high-resolution pixel
    velocity: tuple[float, float] = (0.0, 0.0)  #: screen-centre motion, high-resolution pixels per frame
    zoom_rate: float = 0.0  #: relative change of ``zoom`` per frame
    rotation_rate: float = 0.0  #: radians per frame

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``(A, b)`` of frame ``t``: source = ``A @ (p - half) + b`` for screen point ``p`` (HR pixels)."""
        zoom = self.zoom * (1.0 + self.zoom_rate) ** t
        angle = self.rotation_rate * t
        c, s = math.cos(angle), math.sin(angle)
        a = zoom * np.array([[c, -s], [s, c]])
        # the centre moves along the screen's axes of frame 0, at the zoom of frame 0
        b = np.asarray(self.center) + self.zoom * np.asarray(self.velocity) * t
        return a, b


@dataclass(frozen=True)
class Layer:
    """A sprite with a hard-edged elliptical alpha, moving across the screen (HR pixels)."""

    texture: np.ndarray  #: HxWx3 float32 in [0, 1]
    origin: tuple[float, float]  #: top-left corner on screen at frame 0
    size: tuple[float, float]  #: width and height on screen
    velocity: tuple[float, float]  #: screen pixels per frame


@dataclass(frozen=True)
class SequenceSpec:
    """One synthetic sequence."""

    scale: int  #: high-resolution / low-resolution size
    size: tuple[int, int]  #: low-resolution width and height
    frames: int
    camera: Camera
    layer: Layer | None = None
    brightness: float = 0.0  #: amplitude of a slow exposure change (0: none)
    cut_at: int | None = None  #: the first frame of a new shot (stale history, zero motion)
    cut_camera: Camera | None = None  #: the camera after the cut
    jitter: tuple[tuple[float, float], ...] = field(default_factory=lambda: tuple(jitter_sequence(16)))
    jitter_offset: int = 0  #: where in the jitter sequence frame 0 starts
    fade: int = 0  #: frames a fade in from black takes from frame 0 (0: none)
    depths: tuple[float, float] = (10.0, 2.0)  #: linear depth of the scene and of the layer (in front)


@dataclass
class SequenceFrame:
    """One rendered frame and what a game would hand over with it."""

    lr: np.ndarray  #: h x w x 3 uint8, point-sampled with the jitter
    hr: np.ndarray  #: sh x sw x 3 uint8, anti-aliased reference
    jitter: tuple[float, float]  #: where this frame sampled, low-resolution pixels
    motion: np.ndarray  #: h x w x 2 float32, low-resolution pixels, previous = current + motion
    dynamic: np.ndarray  #: sh x sw bool: the moving layer now or in the previous frame
    cut: bool = False  #: the first frame of a new shot
    depth: np.ndarray | None = None  #: h x w float32, linear depth at each sample (what a renderer hands over)
    disoccluded: np.ndarray | None = None  #: sh x sw bool: background the layer covered in the previous frame


def _screen_points(width: float, height: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Screen points (HR pixels) of a grid, relative to the screen centre: shape (h, w, 2)."""
    gx, gy = np.meshgrid(xs - width / 2, ys - height / 2)
    return np.stack([gx, gy], axis=-1)


def _to_source(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return points @ a.T + b


def _remap(image: np.ndarray, coords: np.ndarray, border: int = cv2.BORDER_REFLECT101) -> np.ndarray:
    """Bilinear samples of ``image`` at continuous ``coords`` (origin at the top-left corner)."""
    mx = (coords[..., 0] - 0.5).astype(np.float32)
    my = (coords[..., 1] - 0.5).astype(np.float32)
    out = cv2.remap(image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=border)
    return out if out.ndim == 3 else out[..., None]


def _render(
    scene: np.ndarray, camera: Camera, layer: Layer | None, t: int, width: float, height: float, xs, ys, gain: float
) -> tuple[np.ndarray, np.ndarray]:
    """Colour (float32) and layer coverage at the screen grid ``xs`` x ``ys`` (HR pixels) of frame ``t``."""
    a, b = camera.at(t)
    screen = _screen_points(width, height, xs, ys)
    colour = _remap(scene, _to_source(screen, a, b))
    cover = np.zeros(colour.shape[:2], np.float32)
    if layer is not None:
        ox, oy = layer.origin[0] + layer.velocity[0] * t, layer.origin[1] + layer.velocity[1] * t
        gx, gy = np.meshgrid(xs, ys)
        u, v = (gx - ox) / layer.size[0], (gy - oy) / layer.size[1]  # 0..1 inside the sprite's box
        cover = (((u - 0.5) ** 2 + (v - 0.5) ** 2) <= 0.25).astype(np.float32)  # hard elliptical edge
        th, tw = layer.texture.shape[:2]
        sprite = _remap(layer.texture, np.stack([u * tw, v * th], axis=-1), cv2.BORDER_REFLECT101)
        colour = colour * (1 - cover[..., None]) + sprite * cover[..., None]
    return np.clip(colour * gain, 0.0, 1.0), cover


def _gain(spec: SequenceSpec, t: int) -> float:
    fade = min(1.0, t / spec.fade) if spec.fade > 0 else 1.0
    return fade * (1.0 + spec.brightness * math.sin(2 * math.pi * t / 24.0))


def _motion(spec: SequenceSpec, camera: Camera, t: int, width: int, height: int, cover: np.ndarray) -> np.ndarray:
    """Motion at low-resolution pixel centres (LR pixels): camera motion, or the layer's where it covers."""
    s = spec.scale
    xs, ys = (np.arange(width) + 0.5) * s, (np.arange(height) + 0.5) * s
    screen = _screen_points(width * s, height * s, xs, ys)
    a_now, b_now = camera.at(t)
    a_prev, b_prev = camera.at(t - 1)
    source = _to_source(screen, a_now, b_now)
    previous = (source - b_prev) @ np.linalg.inv(a_prev).T
    motion = (previous - screen) / s
    if spec.layer is not None:
        moved = np.asarray(spec.layer.velocity, np.float64) / s
        motion = np.where(cover[..., None] > 0.5, -moved, motion)
    return motion.astype(np.float32)


def make_sequence(
    scene: np.ndarray, spec: SequenceSpec, cut_scene: np.ndarray | None = None, *, supersamples: int = SUPERSAMPLES
) -> list[SequenceFrame]:
    """Render ``spec`` over ``scene`` (HxWx3, uint8 or float in [0, 1]); ``cut_scene`` is the shot after a cut.

    ``supersamples`` per axis per high-resolution pixel make the reference (training may use fewer).
    """
    scene = _as_float(scene)
    after = _as_float(cut_scene) if cut_scene is not None else scene
    s, (w, h) = spec.scale, spec.size
    wh, hh = w * s, h * s
    k = supersamples
    dense_x, dense_y = (np.arange(wh * k) + 0.5) / k, (np.arange(hh * k) + 0.5) / k
    centre_x, centre_y = (np.arange(w) + 0.5) * s, (np.arange(h) + 0.5) * s
    frames: list[SequenceFrame] = []
    previous_cover_hr = None
    for t in range(spec.frames):
        cut = spec.cut_at is not None and t >= spec.cut_at
        camera = (spec.cut_camera or spec.camera) if cut else spec.camera
        source = after if cut else scene
        shot_t = t - spec.cut_at if cut else t
        layer = None if cut else spec.layer
        gain = _gain(spec, t)
        jx, jy = spec.jitter[(spec.jitter_offset + t) % len(spec.jitter)]
        dense, dense_cover = _render(source, camera, layer, shot_t, wh, hh, dense_x, dense_y, gain)
        hr = cv2.resize(dense, (wh, hh), interpolation=cv2.INTER_AREA)
        cover_hr = cv2.resize(dense_cover, (wh, hh), interpolation=cv2.INTER_AREA) > 0
        lr, lr_cover = _render(source, camera, layer, shot_t, wh, hh, centre_x + jx * s, centre_y + jy * s, gain)
        _, centre_cover = _render(source, camera, layer, shot_t, wh, hh, centre_x, centre_y, gain)
        first = t == 0 or (spec.cut_at is not None and t == spec.cut_at)
        if first:
            motion = np.zeros((h, w, 2), np.float32)
        else:
            spec_now = spec if not cut else replace(spec, layer=None)
            motion = _motion(spec_now, camera, shot_t, w, h, centre_cover)
        dynamic = cover_hr if previous_cover_hr is None or first else cover_hr | previous_cover_hr
        uncovered = np.zeros_like(cover_hr) if previous_cover_hr is None or first else previous_cover_hr & ~cover_hr
        previous_cover_hr = cover_hr
        depth = np.where(lr_cover > 0.5, spec.depths[1], spec.depths[0]).astype(np.float32)
        frames.append(
            SequenceFrame(
                lr=_to_uint8(lr),
                hr=_to_uint8(hr),
                jitter=(jx, jy),
                motion=motion,
                dynamic=dynamic,
                cut=bool(spec.cut_at is not None and t == spec.cut_at),
                depth=depth,
                disoccluded=uncovered,
            )
        )
    return frames


def random_spec(
    rng: np.random.Generator,
    scene_shape: tuple[int, int],
    *,
    scale: int,
    size: tuple[int, int],
    frames: int,
    layer_texture: np.ndarray | None = None,
    cut_scene_shape: tuple[int, int] | None = None,
    max_speed: float = 2.0,
) -> SequenceSpec:
    """A random sequence over a scene of ``scene_shape`` (h, w): the training distribution.

    Camera speed up to ``max_speed`` low-resolution pixels per frame with
    sub-pixel components, zoom drift up to 1 % per frame, rotation up to
    0.5 degree per frame; a layer (when a texture is given) half the time;
    exposure drift a quarter of the time; a cut (when a second scene shape
    is given) at a random frame.
    """
    w, h = size

    def camera(shape: tuple[int, int]) -> Camera:
        zoom = float(rng.uniform(1.0, 2.0))
        angle = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0, max_speed) * scale  # HR pixels per frame
        return Camera(
            center=(rng.uniform(0.3, 0.7) * shape[1], rng.uniform(0.3, 0.7) * shape[0]),
            zoom=zoom,
            velocity=(speed * math.cos(angle), speed * math.sin(angle)),
            zoom_rate=float(rng.uniform(-0.01, 0.01)) if rng.random() < 0.3 else 0.0,
            rotation_rate=float(rng.uniform(-0.009, 0.009)) if rng.random() < 0.3 else 0.0,
        )

    layer = None
    if layer_texture is not None and rng.random() < 0.5:
        lw, lh = rng.uniform(0.25, 0.6) * w * scale, rng.uniform(0.25, 0.6) * h * scale
        angle = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0.5, 3.0) * scale
        layer = Layer(
            texture=_as_float(layer_texture),
            origin=(rng.uniform(0, w * scale - lw), rng.uniform(0, h * scale - lh)),
            size=(lw, lh),
            velocity=(speed * math.cos(angle), speed * math.sin(angle)),
        )
    cut_at = int(rng.integers(2, frames)) if cut_scene_shape is not None and frames > 2 else None
    return SequenceSpec(
        scale=scale,
        size=size,
        frames=frames,
        camera=camera(scene_shape),
        layer=layer,
        brightness=float(rng.uniform(0.05, 0.25)) if rng.random() < 0.25 else 0.0,
        cut_at=cut_at,
        cut_camera=camera(cut_scene_shape) if cut_at is not None else None,
        jitter_offset=int(rng.integers(0, 16)),
    )


def _as_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(image * 255.0 + 0.5), 0, 255).astype(np.uint8)
