"""``upscaler upscale``: image files, folders and globs in, upscaled images out."""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from upscaler.cli.common import (
    add_batch_option,
    add_engine_options,
    add_size_options,
    add_source_option,
    earlier_output,
    non_negative_int,
    output_size,
    positive_int,
    tagged_folder,
)
from upscaler.io import IMAGE_SUFFIXES, OUTPUT_FORMATS, ImageError, list_images, read_image_bytes, write_image

__all__ = ["Job", "Plan", "plan_jobs", "register"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``upscale`` subcommand."""
    p = sub.add_parser(
        "upscale",
        help="upscale image files, folders or globs",
        description="Upscale images. One input and an output ending in .png/.jpg/.webp writes that file; "
        "otherwise OUTPUT is a folder. Without -o, photo.jpg gives photo_x4.jpg beside it and a folder photos/ "
        "gives photos_x4/ beside it. Existing outputs are skipped unless --overwrite; inputs are never "
        "overwritten.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument(
        "-o",
        "--output",
        help="output file (one input) or folder (default: beside each input, named NAME_xS: photo_x4.png)",
    )
    add_engine_options(p)
    p.add_argument(
        "--tile",
        type=non_negative_int,
        help="tile edge in input pixels (0: never tile; default: 512 on the CPU, 1920 on a GPU)",
    )
    add_batch_option(
        p, type=positive_int, default=1, help="tiles per engine call (default: 1; more helps GPUs, not CPUs)"
    )
    p.add_argument(
        "--format",
        "-f",
        choices=list(OUTPUT_FORMATS),  # what the writer takes, jpg and jpeg both (the service says jpeg)
        help="output format: png, jpg (or jpeg), webp (default: the input's if one of those, else png)",
    )
    p.add_argument("--quality", type=positive_int, help="JPEG/WebP quality 1-100 (default: 95)")
    p.add_argument(
        "--alpha",
        choices=["model", "bicubic"],
        default="model",
        help="how to upscale an alpha channel (default: model)",
    )
    add_size_options(p)
    add_source_option(p, "the file (JPEG, lossy WebP, AVIF: compressed) and, for other files, a JPEG's 8x8 grid in "
                      "the pixels")  # fmt: skip
    p.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders of folder inputs")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_run)


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes."""

    source: Path
    target: Path


#: Extensions that name image files, including ones this tool reads but cannot write.
_IMAGE_NAMES = IMAGE_SUFFIXES | {".gif", ".avif", ".heic", ".jxl", ".exr", ".jp2"}


@dataclass
class Plan:
    """Jobs to run, and inputs that could not even be listed."""

    jobs: list[Job]
    errors: list[str]


def _expand_one(item: str, recursive: bool) -> list[tuple[Path, Path | None]]:
    path = Path(item)
    if path.is_dir():
        return [(f, path) for f in list_images(path, recursive)]
    if glob.has_magic(item) and not path.exists():
        matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
        files = [m for m in matches if m.suffix.lower() in IMAGE_SUFFIXES and m.is_file()]
        if not files:
            raise ImageError(f"{item}: no image matches this pattern")
        return [(f, None) for f in files]
    return [(path, None)]  # a missing or unreadable file fails when it is read


def _expand(
    inputs: list[str], recursive: bool, output: Path | None
) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """``(file, folder it came from or None)`` per input image, each once, and per-input errors.

    Files under ``output`` found by listing a folder that contains it are left
    out, so earlier results kept inside an input folder are not upscaled again.
    """
    found: list[tuple[Path, Path | None]] = []
    errors: list[str] = []
    seen: set[Path] = set()
    out = output.resolve() if output is not None else None
    for item in inputs:
        try:
            entries = _expand_one(item, recursive)
        except ImageError as exc:
            errors.append(str(exc))
            continue
        except OSError as exc:
            errors.append(str(exc) if not exc.strerror else f"{item}: cannot read ({exc.strerror})")
            continue
        for file, folder in entries:
            key = file.resolve()
            inside = out is not None and folder is not None and out != folder.resolve() and key.is_relative_to(out)
            if key in seen or inside:
                continue
            seen.add(key)
            found.append((file, folder))
    return found, errors


def _beside(source: Path, folder: Path | None, ext: str, tag: str) -> Path:
    """Where an input's output goes without ``-o``: ``photo_x4.png`` beside ``photo.png``; for a file found in
    a folder ``photos``, the same relative path under ``photos_x4`` beside it."""
    if folder is None:
        return source.with_name(f"{source.stem}{tag}{ext}")
    return tagged_folder(folder, tag) / source.relative_to(folder).with_suffix(ext)


def _plan_beside(inputs: list[str], fmt: str | None, recursive: bool, tag: str) -> Plan:
    files, errors = _expand(inputs, recursive, None)
    named = {Path(item) for item in inputs}
    jobs = []
    for source, folder in files:
        if folder is None and source not in named and earlier_output(source, tag, IMAGE_SUFFIXES):
            continue  # a pattern matched what an earlier run wrote: not an input
        ext = OUTPUT_FORMATS[fmt] if fmt else _same_format(source)
        jobs.append(Job(source, _beside(source, folder, ext, tag)))
    return Plan(jobs, errors)


def plan_jobs(
    inputs: list[str], output: str | None, fmt: str | None, recursive: bool = False, *, tag: str = "_x4"
) -> Plan:
    """Map inputs to output paths (``output`` None: beside each input, its name with ``tag`` added); raises
    ``ImageError`` for an impossible output."""
    if output is None:
        return _plan_beside(inputs, fmt, recursive, tag)
    out = Path(output)
    files, errors = _expand(inputs, recursive, out)
    suffix = out.suffix.lower()
    writable = suffix.lstrip(".") in OUTPUT_FORMATS
    if suffix in _IMAGE_NAMES and not writable and not out.is_dir():
        raise ImageError(f"{out}: cannot write {suffix} files; name a .png, .jpg or .webp file, or a folder")
    single_file = writable and not out.is_dir()
    if writable and out.is_dir() and len(inputs) == 1 and not Path(inputs[0]).is_dir():
        raise ImageError(f"{out}: is a directory, expected an output file")
    if single_file and len(files) > 1:
        raise ImageError(f"{out}: several inputs need an output folder, not a file name")
    if single_file and fmt and OUTPUT_FORMATS[fmt] != OUTPUT_FORMATS[suffix.lstrip(".")]:
        raise ImageError(f"--format {fmt} contradicts the output name {out.name}")
    if out.exists() and not out.is_dir() and not single_file:
        raise ImageError(f"{out}: exists and is not a folder")
    jobs = []
    for source, folder in files:
        if single_file:
            jobs.append(Job(source, out))
            continue
        ext = OUTPUT_FORMATS[fmt] if fmt else _same_format(source)
        relative = source.relative_to(folder) if folder else Path(source.name)
        jobs.append(Job(source, out / relative.with_suffix(ext)))
    return Plan(jobs, errors)


def _unwritable_folders(jobs: list[Job]) -> dict[Path, str]:
    """Output folders that cannot be created or written, with the reason (checked before any work)."""
    problems: dict[Path, str] = {}
    for parent in {job.target.parent for job in jobs}:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problems[parent] = exc.strerror or str(exc)
            continue
        if not os.access(parent, os.W_OK | os.X_OK):
            problems[parent] = "permission denied"
    return problems


def _same_format(source: Path) -> str:
    ext = source.suffix.lower().lstrip(".")
    return OUTPUT_FORMATS.get(ext, ".png")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


class _Engines:
    """The ``Upscaler`` of each model a run uses (the one asked for, and its x2 sibling for small factors)."""

    def __init__(self, args: argparse.Namespace, model) -> None:
        self.args, self.model, self._loaded = args, model, {}
        self.used: dict[str, str] = {}  #: model name -> engine name, of the models that ran
        self.images: dict[str, int] = {}  #: model name -> images it upscaled
        self.interpolated = 0  #: images asked for a size past their model's scale (bicubic beyond it)

    def get(self, name: str):
        """The ``Upscaler`` of model ``name``, loaded once; the model asked for is loaded as given (a
        ``.safetensors`` path is named by its metadata, which no registry knows)."""
        from upscaler.facade import Upscaler

        if name not in self._loaded:
            a = self.args
            model = self.model if name == self.model.name else name
            self._loaded[name] = Upscaler(model, a.backend, tile=a.tile, batch_size=a.batch_size, threads=a.threads,
                                          alpha=a.alpha, precision=a.precision)  # fmt: skip
        return self._loaded[name]

    def upscale(self, image, size, lossy: bool | None = None, quality: int | None = None):
        """``image`` at the asked size: the model (or its x2 sibling, or the clean partner of either for a
        clean source: ``lossy``, ``quality``, ``--source``), then resampled."""
        from upscaler.outsize import fit, model_for
        from upscaler.sources import choose_model

        name = self.model.name
        if size.given:
            h, w = image.shape[:2]
            name = model_for(name, size.factor(w, h, self.model.scale))
        up = self.get(choose_model(name, self.args.source, lossy=lossy, quality=quality, image=image))
        self.used[up.model.name] = up.engine.name
        self.images[up.model.name] = self.images.get(up.model.name, 0) + 1
        out = up.upscale(image)
        if not size.given:
            return out
        self.interpolated += size.factor(image.shape[1], image.shape[0], up.scale) > up.scale
        return fit(out, *size.of(image.shape[1], image.shape[0], up.scale))

    def describe(self) -> str:
        """The models that ran and their engines; with several, how many images each took."""
        counts = {m: f" ({n})" if len(self.used) > 1 else "" for m, n in self.images.items()}
        return ", ".join(f"{m} on {e}{counts[m]}" for m, e in self.used.items()) or self.model.name


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.quality is not None and args.quality > 100:
        raise ImageError(f"--quality must be 1-100, got {args.quality}")
    from upscaler.models import get_model
    from upscaler.sources import image_evidence

    size = output_size(args)
    model = get_model(args.model)
    plan = plan_jobs(args.inputs, args.output, args.format, args.recursive, tag=size.tag(model.scale))
    jobs = plan.jobs
    engines = _Engines(args, model)
    engines.get(model.name)  # loaded before any output is planned to be written: a bad engine fails once
    sources = {job.source.resolve() for job in jobs}
    targets: set[Path] = set()
    done = skipped = 0
    failed: list[str] = []

    def fail(message: str) -> None:
        failed.append(message)
        tqdm.write(f"upscaler: error: {message}", file=sys.stderr)

    for message in plan.errors:
        fail(message)
    unwritable = _unwritable_folders(jobs)
    show = not args.quiet and len(jobs) > 1
    # disable=None: tqdm shows the bar only where stderr is a terminal (a log or a pipe gets the summary)
    bar = tqdm(jobs, disable=None if show else True, unit="img", file=sys.stderr, dynamic_ncols=True)
    for job in bar:
        target = job.target.resolve()
        if job.target.parent in unwritable:
            fail(f"{job.source}: cannot write to {job.target.parent} ({unwritable[job.target.parent]})")
            continue
        if target in sources or _same_file(job.source, job.target):
            fail(f"{job.source}: output {job.target} is an input; refusing to overwrite it")
            continue
        if target in targets:
            fail(f"{job.source}: output {job.target} is also the output of another input")
            continue
        targets.add(target)
        if job.target.exists() and not args.overwrite:
            skipped += 1
            if not args.quiet:
                tqdm.write(f"skipped {job.source}: {job.target} exists (use --overwrite)", file=sys.stderr)
            continue
        try:
            image, data = read_image_bytes(job.source)  # one read: the pixels and what the header says
            out = engines.upscale(image, size, *image_evidence(data))
            write_image(job.target, out, quality=args.quality)
        except Exception as exc:  # one bad file must not stop the others
            log.debug("failed on %s", job.source, exc_info=True)
            fail(str(exc).splitlines()[0] if str(exc) else f"{job.source}: {type(exc).__name__}")
            continue
        done += 1
    bar.close()
    if not args.quiet:
        summary = f"{done} upscaled with {engines.describe()}"
        if engines.interpolated:  # nothing was inferred past the model's own scale: say so
            summary += f" ({engines.interpolated} past the model's scale: bicubic beyond it)"
        summary += f", {skipped} skipped" if skipped else ""
        summary += f", {len(failed)} failed" if failed else ""
        print(summary, file=sys.stderr)
    return 1 if failed else 0
