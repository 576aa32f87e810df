"""Timing subjects (our engines and the peers) over a sweep, network-only and end-to-end with stages.

A subject is one row source: a model on an engine in a precision, or a
peer. Every (subject, size, batch) case runs in rounds, interleaved with
all other cases, so drift on a noisy machine touches each alike.

- network: the engine alone on a prepared ``N x 3 x H x W`` float batch (a
  peer: its upscale call on decoded frames);
- end-to-end: PNG bytes in, PNG bytes out, timed per stage: decode, prepare
  (to float, batched), infer (the engine call with its uploads and
  downloads: engines return host arrays, so the device has finished),
  finish (clamp, round, interleave to 8 bits), encode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from upscaler import pipeline
from upscaler.bench.peers import Peer
from upscaler.bench.stats import latency_stats
from upscaler.degradations import protocol_degradation
from upscaler.io import decode_image, encode_image

__all__ = ["STAGES", "Case", "EngineSubject", "PeerSubject", "end_to_end", "frames_for", "run_cases"]

STAGES = ("decode", "prepare", "infer", "finish", "encode")


class EngineSubject:
    """One of our models on one engine, in one precision."""

    kind = "engine"

    def __init__(self, upscaler, recipe: dict | None = None) -> None:
        self.up = upscaler
        #: how to build it again in another process (the memory probe); None: it cannot be
        self.recipe = recipe
        self.name, self.engine = upscaler.model.name, upscaler.engine.name
        self.precision, self.scale = upscaler.engine.precision, upscaler.scale
        self.degradation = protocol_degradation(upscaler.model.degradation)

    def network_input(self, frames: list[np.ndarray]) -> np.ndarray:
        """What ``network`` times: the float batch the engine's network takes."""
        return pipeline.color_batch(frames)

    def network(self, batch: np.ndarray) -> object:
        return self.up.engine.run(batch)

    def prepare(self, frames: list[np.ndarray]) -> np.ndarray:
        if self.up.rgb8:  # the engine converts where it runs: 8-bit frames in and out
            return np.stack(frames)
        return pipeline.color_batch(frames)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.up.infer_rgb8(batch) if self.up.rgb8 else self.up.infer(batch)

    def finish(self, outputs: np.ndarray) -> list[np.ndarray]:
        if self.up.rgb8:
            return list(outputs)
        return [pipeline.planes_to_image(o, np.uint8) for o in outputs]

    def upscale(self, image: np.ndarray) -> np.ndarray:
        return self.up.upscale(image)

    def device_peak_bytes(self) -> int | None:
        if not self.up.engine.device.startswith("cuda"):
            return None
        try:
            import torch

            return int(torch.cuda.max_memory_allocated(self.up.engine.device))
        except Exception:  # not a PyTorch-allocated engine
            return None

    def reset_device_peak(self) -> None:
        if self.up.engine.device.startswith("cuda"):
            try:
                import torch

                torch.cuda.reset_peak_memory_stats(self.up.engine.device)
            except Exception:  # not PyTorch's memory
                pass


class PeerSubject:
    """A peer (OpenCV): no separate network step, so ``prepare`` and ``finish`` are empty."""

    kind = "peer"
    precision = "-"
    degradation = "bicubic"

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.recipe = peer.recipe()
        self.name, self.engine, self.scale = peer.name, peer.engine, peer.scale

    def network_input(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        return frames

    def network(self, frames: list[np.ndarray]) -> object:
        return self.infer(frames)

    def prepare(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        return frames

    def infer(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        return [self.peer.upscale(f) for f in frames]

    def finish(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        return outputs

    def upscale(self, image: np.ndarray) -> np.ndarray:
        return self.peer.upscale(image)

    def device_peak_bytes(self) -> None:
        return None

    def reset_device_peak(self) -> None:
        pass


@dataclass
class Case:
    """One subject at one input size and batch size, and what was measured."""

    subject: EngineSubject | PeerSubject
    width: int
    height: int
    batch: int
    network_ms: list[float] = field(default_factory=list)
    end_to_end_ms: list[float] = field(default_factory=list)
    stages_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    host_peak_bytes: int | None = None  #: peak RSS of a fresh process running only this case (memory.py)
    host_case_bytes: int | None = None  #: that peak less the process's RSS before it built the subject
    device_peak_bytes: int | None = None

    def summary(self) -> dict:
        s = self.subject
        out_pixels = self.width * self.height * s.scale * s.scale
        return {
            "kind": s.kind,
            "name": s.name,
            "engine": s.engine,
            "precision": s.precision,
            "input": f"{self.width}x{self.height}",
            "output": f"{self.width * s.scale}x{self.height * s.scale}",
            "output_mpix": round(out_pixels / 1e6, 3),
            "batch": self.batch,
            "network": latency_stats(self.network_ms, frames=self.batch, output_pixels=out_pixels),
            "end_to_end": latency_stats(self.end_to_end_ms, frames=self.batch, output_pixels=out_pixels),
            "stages_p50_ms": {k: round(float(np.median(v)), 3) for k, v in self.stages_ms.items() if v},
            "host_peak_mb": _mb(self.host_peak_bytes),
            "host_case_mb": _mb(self.host_case_bytes),
            "device_peak_mb": _mb(self.device_peak_bytes),
        }


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def frames_for(width: int, height: int, batch: int, seed: int) -> tuple[list[np.ndarray], list[bytes]]:
    """``batch`` frames of ``width`` x ``height`` and their PNGs: random-textured but compressible
    (a real photo would need data; noise is the worst case for PNG)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    base = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    frames = [np.ascontiguousarray(np.roll(base, i * 3, axis=1)) for i in range(batch)]
    return frames, [encode_image(f, "png") for f in frames]


def end_to_end(subject, encoded: list[bytes], stages: dict[str, list[float]]) -> float:
    """One PNG-in, PNG-out pass of ``subject`` over ``encoded``: its ms; each stage's ms appended to ``stages``."""
    marks = [time.perf_counter()]
    frames = [decode_image(data) for data in encoded]
    marks.append(time.perf_counter())
    prepared = subject.prepare(frames)
    marks.append(time.perf_counter())
    outputs = subject.infer(prepared)
    marks.append(time.perf_counter())
    images = subject.finish(outputs)
    marks.append(time.perf_counter())
    for image in images:
        encode_image(image, "png")
    marks.append(time.perf_counter())
    for name, start, end in zip(STAGES, marks, marks[1:]):
        stages[name].append((end - start) * 1000.0)
    return (marks[-1] - marks[0]) * 1000.0


def run_cases(
    cases: Sequence[Case],
    *,
    rounds: int = 3,
    runs: int = 5,
    warmup: int = 2,
    budget_s: float | None = None,
    seed: int = 0,
    on_step: Callable[[Case], None] | None = None,
) -> None:
    """Measure every case in place: warm-up, then ``rounds`` interleaved blocks of ``runs`` calls each.

    With ``budget_s``, each block runs for ``budget_s / rounds`` seconds
    instead (at least one call). ``on_step`` is called after every block.
    """
    inputs = {}
    for case in cases:
        frames, encoded = frames_for(case.width, case.height, case.batch, seed)
        net_in = case.subject.network_input(frames)
        inputs[id(case)] = (net_in, encoded)
        for _ in range(warmup):
            case.subject.network(net_in)
            end_to_end(case.subject, encoded, {s: [] for s in STAGES})
    for _ in range(rounds):
        for case in cases:
            net_in, encoded = inputs[id(case)]
            case.subject.reset_device_peak()
            deadline = None if budget_s is None else time.perf_counter() + budget_s / rounds
            done = 0
            while done < runs if deadline is None else (done == 0 or time.perf_counter() < deadline):
                start = time.perf_counter()
                case.subject.network(net_in)
                case.network_ms.append((time.perf_counter() - start) * 1000.0)
                case.end_to_end_ms.append(end_to_end(case.subject, encoded, case.stages_ms))
                done += 1
            device = case.subject.device_peak_bytes()
            if device is not None:
                case.device_peak_bytes = max(case.device_peak_bytes or 0, device)
            if on_step:
                on_step(case)


@dataclass(frozen=True)
class Skipped:
    """A subject that could not be built here, and why."""

    engine: str
    model: str
    precision: str
    reason: str


def build_subjects(
    models: Sequence[str],
    engines: Sequence[str],
    precisions: Sequence[str | None],
    *,
    threads: int | None = None,
    spin: bool = False,
) -> tuple[list[EngineSubject], list[Skipped]]:
    """One subject per engine x model x precision that loads here; the others with their reason."""
    from upscaler.facade import Upscaler
    from upscaler.runtime import EngineUnavailable

    subjects, skipped = [], []
    for engine in engines:
        for model in models:
            for precision in precisions:
                try:
                    up = Upscaler(model, engine, tile=0, threads=threads, precision=precision, spin=spin)
                except EngineUnavailable as exc:
                    skipped.append(Skipped(engine, str(model), precision or "default", str(exc)))
                    continue
                recipe = {"kind": "engine", "model": str(model), "engine": up.engine.name,
                          "precision": up.engine.precision, "threads": threads}  # fmt: skip
                subjects.append(EngineSubject(up, recipe))
    return subjects, skipped


def measure_quality(subject: EngineSubject | PeerSubject, folder, limit: int | None = None) -> dict:
    """PSNR/SSIM (Y, ``upscaler eval``'s protocol) of one subject on ``folder``, with its own degradation."""
    from pathlib import Path

    from upscaler.evaluate import evaluate_folder

    score = evaluate_folder(Path(folder), subject.upscale, subject.scale, subject.degradation, limit=limit)
    summary = score.summary()
    return {"dataset": summary["dataset"], "images": summary["images"], "psnr": summary["psnr"],
            "ssim": summary["ssim"], "degradation": subject.degradation}  # fmt: skip
