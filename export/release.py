"""Release trained weights as a built-in model.

Copies the safetensors into the package, exports the ONNX graph, checks its
parity with PyTorch on real images, measures quality with ``upscaler eval``'s
protocol through ONNX Runtime, and writes the manifest entry with checksums,
measured numbers and how the weights were trained.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from export.onnx_export import check_parity, export_onnx
from upscaler.degradations import protocol_degradation
from upscaler.evaluate import evaluate_folder
from upscaler.facade import Upscaler
from upscaler.io import sample_images, write_atomic
from upscaler.models import (
    MANIFEST_PATH,
    WEIGHTS_DIR,
    ModelDescriptor,
    ModelFile,
    load_manifest,
    load_partners,
    sha256_file,
)
from upscaler.models.descriptor import descriptor_from_safetensors, temporal_cpu_graphs

__all__ = ["add_graph", "release"]

log = logging.getLogger(__name__)


def release(
    weights: Path,
    name: str,
    *,
    description: str,
    eval_dirs: list[Path],
    make_default: bool = False,
    degradation: str | None = None,
    aliases: tuple[str, ...] = (),
    manifest_path: Path = MANIFEST_PATH,
    weights_dir: Path = WEIGHTS_DIR,
) -> ModelDescriptor:
    """Install ``weights`` as built-in model ``name`` and return its descriptor.

    Everything is built and checked in a staging folder first; the shipped
    files and the manifest change only once parity and evaluation passed.
    """
    missing = [str(d) for d in eval_dirs if not Path(d).is_dir()]
    if missing:
        raise FileNotFoundError(f"evaluation folder(s) not found: {', '.join(missing)}")
    source = descriptor_from_safetensors(Path(weights))
    if degradation:  # what the model was trained for, when the training data does not say (paired folders)
        source = replace(source, degradation=degradation)
    weights_dir.mkdir(parents=True, exist_ok=True)
    build = _build_temporal if source.temporal else _build
    with tempfile.TemporaryDirectory(prefix=".release-", dir=weights_dir) as staging:
        staged = build(source, Path(weights), name, description, Path(staging), eval_dirs)

        def install(entry: ModelFile) -> ModelFile:
            target = weights_dir / entry.path.name
            os.replace(entry.path, target)
            return ModelFile(target, entry.sha256)

        model = replace(
            staged,
            weights=install(staged.weights),
            onnx=install(staged.onnx),
            graphs={kind: install(entry) for kind, entry in staged.graphs.items()},
        )
        if model.temporal:  # an earlier release's filter graph this one has not: a load by path would read it
            for kind, stale in temporal_cpu_graphs(weights_dir / f"{name}.folded.onnx").items():
                if kind not in model.graphs:
                    stale.unlink()
    _write_manifest(model, make_default, manifest_path, weights_dir, aliases)
    return model


def _stage_weights(
    source: ModelDescriptor, weights: Path, name: str, description: str, staging: Path
) -> ModelDescriptor:
    """``source`` renamed, with a checksummed copy of its weights in ``staging``."""
    copy = staging / f"{name}.safetensors"
    shutil.copyfile(weights, copy)
    return replace(source, name=name, description=description, weights=ModelFile(copy, sha256_file(copy)))


def _build(
    source: ModelDescriptor, weights: Path, name: str, description: str, staging: Path, eval_dirs: list[Path]
) -> ModelDescriptor:
    """Weights, ONNX, parity and quality, all in ``staging``."""
    model = _stage_weights(source, weights, name, description, staging)
    onnx_path = export_onnx(model, staging / f"{name}.onnx")
    parity = check_parity(model, onnx_path, sample_images())
    log.info("parity: max abs error %.2e, PSNR %.1f dB", parity.max_abs_error, parity.psnr)
    model = replace(model, onnx=ModelFile(onnx_path, sha256_file(onnx_path)))
    upscaler = Upscaler(model, "onnxruntime", tile=0)
    quality = {}
    measured = protocol_degradation(model.degradation)
    for folder in eval_dirs:
        score = evaluate_folder(Path(folder), upscaler.upscale, model.scale, measured)
        summary = score.summary()
        dataset = summary.pop("dataset")
        quality[dataset] = {**summary, "degradation": measured, "engine": upscaler.engine.name}
        log.info("%s: %s", folder, summary)
    training = {**model.training, "onnx_parity_max_abs": float(f"{parity.max_abs_error:.3g}")}
    return replace(model, quality=quality, training=training)


def _build_temporal(
    source: ModelDescriptor, weights: Path, name: str, description: str, staging: Path, eval_dirs: list[Path]
) -> ModelDescriptor:
    """A temporal model: weights, the whole-step and folded graphs, their parity, and sequence quality."""
    from export.temporal import check_temporal_parity, export_temporal
    from upscaler.bench.rendered import release_quality
    from upscaler.sequences import Camera, SequenceSpec, make_sequence

    model = _stage_weights(source, weights, name, description, staging)
    full, folded = export_temporal(model, staging / f"{name}.onnx", staging / f"{name}.folded.onnx")
    model = replace(model, graphs={kind: ModelFile(p) for kind, p in temporal_cpu_graphs(folded).items()})
    scene = sample_images()[0]
    spec = SequenceSpec(model.scale, (48, 32), 8, Camera(center=(scene.shape[1] / 2, scene.shape[0] / 2),
                                                         velocity=(0.6 * model.scale, 0.3 * model.scale)))  # fmt: skip
    parity = check_temporal_parity(model, full, folded, make_sequence(scene, spec))
    model = replace(
        model,
        onnx=ModelFile(full, sha256_file(full)),
        graphs={kind: ModelFile(entry.path, sha256_file(entry.path)) for kind, entry in model.graphs.items()},
        degradation="sequence",
    )
    quality = release_quality(model, eval_dirs) if eval_dirs else {}
    training = {**model.training, "onnx_parity_max_abs": {"full": float(f"{parity.full:.3g}"),
                                                          "folded": float(f"{parity.folded:.3g}")}}  # fmt: skip
    return replace(model, quality=quality, training=training)


def add_graph(
    name: str,
    precision: str,
    path: Path,
    report: dict,
    *,
    manifest_path: Path = MANIFEST_PATH,
    weights_dir: Path = WEIGHTS_DIR,
) -> Path:
    """Ship the checked graph at ``path`` as built-in model ``name``'s ``precision`` graph, with its report."""
    raw = json.loads(manifest_path.read_text())
    record = next((r for r in raw["models"] if r["name"] == name), None)
    if record is None:
        raise ValueError(f"{name!r} is not a built-in model; release it first")
    target = weights_dir / f"{name}.{precision}.onnx"
    os.replace(path, target)
    record.setdefault("graphs", {})[precision] = {"path": target.name, "sha256": sha256_file(target)}
    record.setdefault("precision_reports", {})[precision] = report
    record["precisions"] = ["fp32", *(p for p in ("fp16", "int8") if p in record["graphs"])]
    _save_manifest(raw, manifest_path)
    return target


def _save_manifest(raw: dict, manifest_path: Path) -> None:
    write_atomic(manifest_path, json.dumps(raw, indent=2) + "\n")
    load_manifest.cache_clear()
    load_partners.cache_clear()


def _write_manifest(
    model: ModelDescriptor, make_default: bool, manifest_path: Path, weights_dir: Path, extra: tuple[str, ...] = ()
) -> None:
    raw = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": [], "aliases": {}}
    record = model.to_dict(relative_to=weights_dir.resolve())
    names = [r["name"] for r in raw["models"]]
    if model.name in names:
        raw["models"][names.index(model.name)] = record
    else:
        raw["models"].append(record)
    aliases = raw.setdefault("aliases", {})
    if make_default or "default" not in aliases:
        aliases["default"] = model.name
    aliases.setdefault(f"x{model.scale}", model.name)
    aliases.update(dict.fromkeys(extra, model.name))  # e.g. "video": the model 'upscaler video' runs unless told
    _save_manifest(raw, manifest_path)
