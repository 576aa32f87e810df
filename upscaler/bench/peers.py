"""Peers to compare against in the same run: OpenCV resizing, and OpenCV's ``dnn_superres`` networks.

Bicubic and Lanczos need nothing beyond OpenCV. ESPCN, FSRCNN(-small) and
LapSRN run through ``cv2.dnn_superres`` from the OpenCV contrib modules
(``pip install 'upscaler[peers]'``), loading the frozen TensorFlow graphs
OpenCV distributes (``ESPCN_x4.pb`` and so on) from a folder given by the
user: as OpenCV does, they see the Y channel only; chroma is resized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["DnnPeer", "Peer", "ResizePeer", "find_peers", "peer_from_recipe", "resize_peers"]

_DNN_FILE = re.compile(r"^(ESPCN|FSRCNN|FSRCNN-small|LapSRN)_x(\d)\.pb$")
_ALGORITHMS = {"ESPCN": "espcn", "FSRCNN": "fsrcnn", "FSRCNN-small": "fsrcnn", "LapSRN": "lapsrn"}


class Peer:
    """Something that upscales uint8 RGB frames by ``scale``, to be timed and scored beside our engines."""

    name: str
    scale: int
    engine = "opencv"

    def upscale(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recipe(self) -> dict:
        """What ``peer_from_recipe`` needs to build this peer again (in another process)."""
        raise NotImplementedError


@dataclass
class ResizePeer(Peer):
    """Plain OpenCV interpolation."""

    name: str
    scale: int
    interpolation: int

    def upscale(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return cv2.resize(image, (w * self.scale, h * self.scale), interpolation=self.interpolation)

    def recipe(self) -> dict:
        return {"kind": "resize", "name": self.name, "scale": self.scale, "interpolation": self.interpolation}


class DnnPeer(Peer):
    """One OpenCV ``dnn_superres`` network."""

    def __init__(self, path: Path, algorithm: str, scale: int, name: str) -> None:
        self.name, self.scale, self.path, self.algorithm = name, scale, path, algorithm
        self._sr = cv2.dnn_superres.DnnSuperResImpl_create()
        try:
            self._sr.readModel(str(path))
        except cv2.error as exc:
            raise RuntimeError(_unreadable(path, exc)) from None
        self._sr.setModel(algorithm, scale)

    def upscale(self, image: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        return np.ascontiguousarray(self._sr.upsample(bgr)[:, :, ::-1])

    def recipe(self) -> dict:
        return {"kind": "dnn", "name": self.name, "scale": self.scale, "path": str(self.path),
                "algorithm": self.algorithm}  # fmt: skip


def _unreadable(path: Path, exc: Exception) -> str:
    first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if tuple(int(v) for v in cv2.__version__.split(".")[:2]) >= (5, 1):
        return (
            f"{path.name}: OpenCV {cv2.__version__} cannot read OpenCV's dnn_superres TensorFlow graphs (5.1 dropped "
            "the TensorFlow importer): pip install 'opencv-python-headless<5.1' 'opencv-contrib-python-headless<5.1' "
            "(what 'upscaler[peers]' asks for)"
        )
    return f"{path.name}: OpenCV cannot read it ({first})"


def peer_from_recipe(recipe: dict) -> Peer:
    """The peer a ``Peer.recipe()`` describes."""
    if recipe["kind"] == "resize":
        return ResizePeer(recipe["name"], recipe["scale"], recipe["interpolation"])
    if recipe["kind"] == "dnn":
        return DnnPeer(Path(recipe["path"]), recipe["algorithm"], recipe["scale"], recipe["name"])
    raise ValueError(f"not a peer recipe: {recipe!r}")


def resize_peers(scale: int) -> list[Peer]:
    """Bicubic and Lanczos at ``scale``: always in the comparison."""
    return [ResizePeer("bicubic", scale, cv2.INTER_CUBIC), ResizePeer("lanczos", scale, cv2.INTER_LANCZOS4)]


def find_peers(folder: Path, scale: int, only: list[str] | None = None) -> list[Peer]:
    """The ``dnn_superres`` models for ``scale`` in ``folder`` (``only``: those named, lower case: ``espcn``,
    ``fsrcnn-small``, ...); a clear error when there are none or no contrib."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--peers {folder}: no such folder")
    if not hasattr(cv2, "dnn_superres"):
        raise RuntimeError(
            "--peers needs OpenCV's contrib modules (cv2.dnn_superres): pip install 'upscaler[peers]'; if it is "
            "still missing, opencv-python-headless shadows it: pip install --force-reinstall --no-deps "
            "opencv-contrib-python-headless"
        )
    peers = []
    for path in sorted(folder.iterdir()):
        match = _DNN_FILE.match(path.name)
        wanted = only is None or (match is not None and match.group(1).lower() in only)
        if match and int(match.group(2)) == scale and wanted:
            peers.append(DnnPeer(path, _ALGORITHMS[match.group(1)], scale, match.group(1)))
    if not peers:
        raise FileNotFoundError(f"--peers {folder}: no ESPCN/FSRCNN/FSRCNN-small/LapSRN _x{scale}.pb files there")
    return peers
