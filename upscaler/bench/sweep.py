"""What a benchmark sweeps: sizes (presets or WxH), lists given as ``1,4,16`` or separate words."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SIZE_PRESETS", "parse_int_list", "parse_size", "parse_sizes"]

#: Input frame presets (width, height): 16:9 frames by their height.
SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "180p": (320, 180),
    "270p": (480, 270),
    "360p": (640, 360),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
}


def parse_size(text: str) -> tuple[int, int]:
    """``"720p"`` or ``"320x180"`` -> ``(width, height)``."""
    key = text.strip().lower()
    if key in SIZE_PRESETS:
        return SIZE_PRESETS[key]
    try:
        w, h = (int(v) for v in key.split("x"))
    except ValueError:
        presets = ", ".join(SIZE_PRESETS)
        raise ValueError(f"size must be WIDTHxHEIGHT (e.g. 320x180) or a preset ({presets}), got {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return w, h


def _words(values: Iterable[str]) -> list[str]:
    return [part for value in values for part in str(value).split(",") if part.strip()]


def parse_sizes(values: Iterable[str]) -> list[tuple[int, int]]:
    """Sizes from ``["180p,720p", "64x48"]``: commas and separate words both work; duplicates dropped."""
    sizes = [parse_size(v) for v in _words(values)]
    if not sizes:
        raise ValueError("no sizes given")
    return list(dict.fromkeys(sizes))


def parse_int_list(values: Iterable[str], what: str) -> list[int]:
    """Positive integers from ``["1,4", "16"]``."""
    out = []
    for word in _words(values):
        try:
            value = int(word)
        except ValueError:
            raise ValueError(f"{what} must be whole numbers, got {word!r}") from None
        if value < 1:
            raise ValueError(f"{what} must be at least 1, got {value}")
        out.append(value)
    if not out:
        raise ValueError(f"no {what} given")
    return list(dict.fromkeys(out))
