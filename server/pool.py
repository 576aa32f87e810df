"""The models a service instance serves: loaded at start, warmed up, and the batch function."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence

import numpy as np

from upscaler.facade import Upscaler
from upscaler.models import ModelError, get_model, load_manifest

__all__ = ["IMAGES", "TILES", "ModelPool"]

log = logging.getLogger(__name__)

#: First element of a batcher key whose items are images (upscaled whole, same-shaped ones together) ...
IMAGES = "images"
#: ... or tile batches (``N x 3 x h x w`` float) of one large image, each through the network alone.
TILES = "tiles"


def _is_path(name: str) -> bool:
    return name.endswith(".safetensors") or "/" in name or "\\" in name


class ModelPool:
    """One ``Upscaler`` per model, by name; aliases (``default``, ``x4``) resolve to the same one."""

    def __init__(
        self,
        names: Sequence[str],
        *,
        backend: str,
        threads: int,
        max_batch_size: int,
        spin: bool = False,
        precision: str | None = None,
    ) -> None:
        self.upscalers: dict[str, Upscaler] = {}
        #: What a client may name, and the served model each resolves to. Paths given at start are not
        #: among them: a client names a model loaded from a file by its name, and learns no server paths.
        self.aliases: dict[str, str] = {}
        for name in names:
            model = get_model(name)
            if model.name not in self.upscalers:
                self.upscalers[model.name] = Upscaler(
                    model,
                    backend,
                    threads=threads or None,
                    batch_size=max_batch_size,
                    spin=spin,
                    precision=precision or None,
                )
            self.aliases[model.name] = model.name
            if not _is_path(name):
                self.aliases[name] = model.name
        for alias, target in load_manifest()[1].items():  # built-in aliases ("x4") of the models served
            if target in self.upscalers:
                self.aliases.setdefault(alias, target)
        self.default = get_model(names[0]).name
        self.ready = False

    def resolve(self, name: str | None) -> Upscaler:
        """The upscaler for a model name a client gave (None: the default); ``ModelError`` if not served.

        Only the names and aliases of served models resolve: never a path, so a client cannot make the
        service read files from its disk.
        """
        key = self.default if name in (None, "", "default") else self.aliases.get(name)
        if key is None:
            raise ModelError(f"model {name!r} is not served here; served: {', '.join(self.upscalers)}")
        return self.upscalers[key]

    def describe(self) -> list[str]:
        """One line per model: name, scale, engine and precision (the start-up log)."""
        return [
            f"model {name} (x{up.scale}{', default' if name == self.default else ''}) on {up.engine.name}, "
            f"{getattr(up.engine, 'precision', '?')} precision"
            for name, up in self.upscalers.items()
        ]

    def warm_up(self) -> None:
        """Run each model once on a small frame (first calls allocate and optimise)."""
        frame = np.zeros((64, 64, 3), np.uint8)
        for name, up in self.upscalers.items():
            up.upscale_batch([frame, frame])
            log.info("warmed up %s on %s", name, up.engine.name)
        self.ready = True

    def run_batch(self, key: Hashable, items: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Batcher callback. ``(IMAGES, model, shape, dtype)``: same-shaped images, upscaled together.
        ``(TILES, model, request)``: batches of prepared tiles of one image, through the network."""
        kind, model = key[0], key[1]
        if kind == TILES:
            return [self.upscalers[model].infer(item) for item in items]
        return self.upscalers[model].upscale_batch(list(items))
