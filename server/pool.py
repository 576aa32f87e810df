"""The models a service instance serves: loaded at start, warmed up, and the batch function.

Single-frame models get an ``Upscaler`` (``/v1/upscale``, ``/v1/frames``, raw
streams); temporal models a ``TemporalModel`` (``/v1/stream`` only: each
frame needs its jitter, motion and the stream's history).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from server.temporal import TEMPORAL, TemporalModel
from upscaler.facade import Upscaler
from upscaler.models import ModelError, get_model, load_manifest

__all__ = ["IMAGES", "TILES", "ModelPool", "Served"]

log = logging.getLogger(__name__)

#: First element of a batcher key whose items are images (upscaled whole, same-shaped ones together) ...
IMAGES = "images"
#: ... or tile batches (``N x 3 x h x w`` float) of one large image, each through the network alone.
TILES = "tiles"


#: What a served model name resolves to.
Served = Upscaler | TemporalModel


def _is_path(name: str) -> bool:
    return name.endswith(".safetensors") or "/" in name or "\\" in name


class ModelPool:
    """One ``Upscaler`` (or ``TemporalModel``) per model, by name; aliases (``default``, ``x4``) resolve to the
    same one."""

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
        self.upscalers: dict[str, Upscaler] = {}  #: single-frame models
        self.temporal: dict[str, TemporalModel] = {}  #: temporal models (streams only)
        self.served: dict[str, Served] = {}  #: every model, in the order given
        #: What a client may name, and the served model each resolves to. Paths given at start are not
        #: among them: a client names a model loaded from a file by its name, and learns no server paths.
        self.aliases: dict[str, str] = {}
        for name in names:
            model = get_model(name)
            if model.name not in self.served:
                if model.temporal:
                    served = self.temporal[model.name] = TemporalModel(
                        model, backend, threads=threads or None, spin=spin, precision=precision or None
                    )
                else:
                    served = self.upscalers[model.name] = Upscaler(
                        model,
                        backend,
                        threads=threads or None,
                        batch_size=max_batch_size,
                        spin=spin,
                        precision=precision or None,
                    )
                self.served[model.name] = served
            self.aliases[model.name] = model.name
            if not _is_path(name):
                self.aliases[name] = model.name
        for alias, target in load_manifest()[1].items():  # built-in aliases ("x4") of the models served
            if target in self.served:
                self.aliases.setdefault(alias, target)
        self.default = get_model(names[0]).name
        self.ready = False

    def resolve(self, name: str | None) -> Served:
        """The served model a client named (None: the default); ``ModelError`` if not served.

        Only the names and aliases of served models resolve: never a path, so a client cannot make the
        service read files from its disk.
        """
        key = self.default if name in (None, "", "default") else self.aliases.get(name)
        if key is None:
            raise ModelError(f"model {name!r} is not served here; served: {', '.join(self.served)}")
        return self.served[key]

    def describe(self) -> list[str]:
        """One line per model: name, scale, engine and precision (the start-up log)."""
        return [
            f"model {name} (x{m.scale}{', temporal: streams only' if name in self.temporal else ''}"
            f"{', default' if name == self.default else ''}) on {m.engine.name}, "
            f"{getattr(m.engine, 'precision', '?')} precision"
            for name, m in self.served.items()
        ]

    def warm_up(self) -> None:
        """Run each model once on a small frame (first calls allocate and optimise)."""
        frame = np.zeros((64, 64, 3), np.uint8)
        for name, m in self.served.items():
            if isinstance(m, TemporalModel):
                m.warm_up()
            else:
                m.upscale_batch([frame, frame])
            log.info("warmed up %s on %s", name, m.engine.name)
        self.ready = True

    def run_batch(self, key: Hashable, items: Sequence[Any]) -> list[np.ndarray]:
        """Batcher callback. ``(IMAGES, model, shape, dtype)``: same-shaped images, upscaled together.
        ``(TILES, model, request)``: batches of prepared tiles of one image, through the network.
        ``(TEMPORAL, model, stream)``: one ``TemporalJob``, a frame of that stream."""
        kind, model = key[0], key[1]
        if kind == TILES:
            return [self.upscalers[model].infer(item) for item in items]
        if kind == TEMPORAL:
            return [job.run() for job in items]
        return self.upscalers[model].upscale_batch(list(items))
