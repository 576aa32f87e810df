"""The models a service instance serves: loaded at start, warmed up, and the batch function."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Hashable, Sequence

import numpy as np

from upscaler.facade import Upscaler
from upscaler.models import ModelError, get_model

__all__ = ["ModelPool"]

log = logging.getLogger(__name__)


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
            self.aliases[name] = model.name
        self.default = self.aliases[names[0]]
        self.ready = False

    def resolve(self, name: str | None) -> Upscaler:
        """The upscaler for a requested model name (None: the default); ``ModelError`` if not served."""
        key = self.default if name in (None, "", "default") else name  # "default": this service's default
        key = self.aliases.get(key, key)
        if key not in self.upscalers:
            with contextlib.suppress(ModelError):  # a built-in alias of a loaded model (e.g. "x4") is fine
                key = get_model(key).name
        if key not in self.upscalers:
            raise ModelError(f"model {name!r} is not served here; served: {', '.join(self.upscalers)}")
        return self.upscalers[key]

    def warm_up(self) -> None:
        """Run each model once on a small frame (first calls allocate and optimise)."""
        frame = np.zeros((64, 64, 3), np.uint8)
        for name, up in self.upscalers.items():
            up.upscale_batch([frame, frame])
            log.info("warmed up %s on %s", name, up.engine.name)
        self.ready = True

    def run_batch(self, key: Hashable, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Batcher callback: ``key`` starts with the model name; images share shape and type."""
        return self.upscalers[key[0]].upscale_batch(list(images))
