"""PlainSR: a plain stack of 3x3 convolutions ending in PixelShuffle.

The inference graph is what TensorRT and ONNX Runtime run best: Conv,
ReLU/PReLU, DepthToSpace and one Resize for the base upsample, no dynamic
control flow. The network learns the residual over a cheap interpolation of
the input, so an untrained net already outputs the base image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PlainSR"]

_ACTIVATIONS = {"relu": lambda c: nn.ReLU(inplace=True), "prelu": lambda c: nn.PReLU(c)}
_BASES = ("nearest", "bilinear", "none")


class PlainSR(nn.Module):
    """``head conv -> blocks x (conv, act) -> tail conv -> PixelShuffle`` plus base.

    ``channels`` features at low resolution, ``blocks`` hidden 3x3 convolutions,
    ``act`` one of ``relu``/``prelu``, ``base`` the upsample the residual is
    added to (``bilinear``, ``nearest`` or ``none``).
    """

    def __init__(
        self,
        scale: int = 4,
        channels: int = 32,
        blocks: int = 4,
        act: str = "relu",
        base: str = "bilinear",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if act not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; choose from {sorted(_ACTIVATIONS)}")
        if base not in _BASES:
            raise ValueError(f"unknown base upsample {base!r}; choose from {list(_BASES)}")
        if scale < 1 or channels < 1 or blocks < 0:
            raise ValueError("scale and channels must be positive and blocks non-negative")
        self.scale, self.base = scale, base
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.head_act = _ACTIVATIONS[act](channels)
        body: list[nn.Module] = []
        for _ in range(blocks):
            body += [nn.Conv2d(channels, channels, 3, padding=1), _ACTIVATIONS[act](channels)]
        self.body = nn.Sequential(*body)
        self.tail = nn.Conv2d(channels, in_channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        with torch.no_grad():  # start close to the base upsample
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.tail(self.body(self.head_act(self.head(x)))))
        if self.base == "bilinear":
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        elif self.base == "nearest":
            out = out + F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return out
