"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from upscaler.runtime import BACKENDS

__all__ = [
    "add_batch_option", "add_engine_options", "earlier_output", "non_negative_int", "positive_int", "tagged_folder",
]  # fmt: skip


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_from(text, 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_from(text, 0, "must not be negative")


def _int_from(text: str, least: int, says: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{says}, got {text}")
    return value


def add_engine_options(
    parser: argparse.ArgumentParser, model_default: str = "the 'default' alias, marked * there"
) -> None:
    """``--model`` (its default named in the help as ``model_default``), ``--backend``, ``--precision`` and
    ``--threads``."""
    parser.add_argument(
        "--model",
        "-m",
        default="default",
        help=f"built-in model name or alias (see 'upscaler models'), or a .safetensors path (default: {model_default})",
    )
    parser.add_argument(
        "--backend",
        "-b",
        default="auto",
        choices=list(BACKENDS),
        help="inference engine or family; auto tries TensorRT, ONNX Runtime CUDA, PyTorch CUDA, then ONNX Runtime "
        "and PyTorch on the CPU, and logs why it skipped each (see 'upscaler info'; default: auto)",
    )
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "fp16", "int8"],
        help="fp32, fp16 (GPUs) or int8 (the quantised CPU graph); default auto: FP16 on GPUs, and on the CPU INT8 "
        "only where this CPU runs it faster within 0.15 dB of FP32 (measured once; see 'upscaler info')",
    )
    parser.add_argument("--threads", type=positive_int, help="CPU threads for inference (default: all cores)")


def add_batch_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, help: str, **kwargs) -> None:
    """``--batch-size N`` (into ``args.batch_size``), which every command also takes as ``--batch``.

    The commands once disagreed on the name; both spellings work everywhere, and ``--help`` shows the
    canonical one with the other as its alias. ``kwargs`` go to both (``type``, ``nargs``, ``default``).
    """
    shown = f"{help[:-1]}; alias: --batch)" if help.endswith(")") else f"{help} (alias: --batch)"
    parser.add_argument("--batch-size", dest="batch_size", metavar="N", help=shown, **kwargs)
    # the alias: the same option under the other name, hidden from --help; no default of its own, so it never
    # overrides the canonical option's
    alias = {key: value for key, value in kwargs.items() if key != "default"}
    parser.add_argument("--batch", dest="batch_size", metavar="N", help=argparse.SUPPRESS, **alias,
                        default=argparse.SUPPRESS)  # fmt: skip


def add_source_option(parser: argparse.ArgumentParser, looks: str) -> None:
    """``--source``: whether a model for compressed sources (x4-video) may hand a clean one to its partner;
    ``looks``: what this command looks at (``upscaler.sources``)."""
    parser.add_argument(
        "--source",
        choices=["auto", "compressed", "clean"],
        default="auto",
        help="for the video models (x4-video, x2-video, x4-video-quality): compressed runs the model asked for, "
        f"clean its partner for clean sources (x4-fast, x2-fast, x4-quality); auto (default) decides by {looks}. "
        "Other models ignore it",
    )


def add_size_options(parser: argparse.ArgumentParser) -> None:
    """``--outscale S`` or ``--width``/``--height``: any output size (``upscaler.outsize``)."""
    group = parser.add_argument_group("output size (default: the model's scale)")
    group.add_argument(
        "--outscale",
        type=float,
        metavar="S",
        help="output S times the input's size (e.g. 3 or 1.5): the model of the smallest scale at or above S "
        "(x4-fast's x2 sibling for S <= 2), then an antialiased resample",
    )
    group.add_argument("--width", type=positive_int, help="output width in pixels (alone: keeps the aspect ratio)")
    group.add_argument("--height", type=positive_int, help="output height in pixels (alone: keeps the aspect ratio)")


def output_size(args: argparse.Namespace):
    """The ``OutputSize`` the size options ask for; ``ValueError`` (one line) for a contradiction."""
    from upscaler.outsize import OutputSize

    return OutputSize(args.outscale, args.width, args.height)


def earlier_output(source: Path, tag: str, suffixes) -> bool:
    """Whether ``source`` (found by a pattern) is the output of an earlier run without ``-o``: ``photo_x4.png``
    beside a ``photo`` file with one of ``suffixes`` (lower case, or upper as cameras write them)."""
    if not source.stem.endswith(tag) or source.stem == tag:
        return False
    stem = source.stem[: -len(tag)]
    return any(source.with_name(stem + s).is_file() for suffix in suffixes for s in (suffix, suffix.upper()))


def tagged_folder(folder: Path, tag: str) -> Path:
    """Where a folder's outputs go without ``-o``: ``photos_x4`` beside ``photos`` (``.`` and ``..`` by the
    name of the folder they stand for)."""
    if folder.name in ("", ".", ".."):
        folder = folder.resolve()
    return folder.with_name(folder.name + tag)
