"""PlainSR: a plain stack of 3x3 convolutions ending in PixelShuffle.

The inference graph is what TensorRT and ONNX Runtime run best: Conv, ReLU
or PReLU and one DepthToSpace, no dynamic control flow. The network learns
the residual over a cheap interpolation of the input (the *base*). The base
is itself a fixed 3x3 convolution at low resolution (edge-padded), added
before the PixelShuffle: exactly PyTorch's bilinear (or nearest) upsample,
at a fraction of the cost of a Resize at high resolution.

For training, ``rep=True`` builds each hidden layer as a re-parameterisable
block (3x3 + 1x1 + identity branches, :class:`RepConv`); :meth:`PlainSR.fused`
folds them into single 3x3 convolutions, which is what is saved and exported.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PlainSR", "RepConv", "base_kernel", "with_identity_layers"]

_ACTIVATIONS = {"relu": lambda c: nn.ReLU(inplace=True), "prelu": lambda c: nn.PReLU(c)}
_BASES = ("nearest", "bilinear", "none")


def _taps(scale: int, mode: str) -> torch.Tensor:
    """``scale x 3`` weights of the left, centre and right input pixel for each output phase."""
    taps = torch.zeros(scale, 3, dtype=torch.float64)
    for r in range(scale):
        offset = (2 * r + 1 - scale) / (2 * scale)  # output centre relative to its input pixel
        if mode == "nearest":  # PyTorch's nearest: floor(out * in / out_len)
            taps[r, 1] = 1.0
        elif offset < 0:
            taps[r, 0], taps[r, 1] = -offset, 1 + offset
        else:
            taps[r, 1], taps[r, 2] = 1 - offset, offset
    return taps


def base_kernel(scale: int, mode: str, channels: int = 3) -> torch.Tensor:
    """Conv weights (``channels * scale**2 x channels x 3 x 3``) that upsample before a PixelShuffle.

    With edge padding of one pixel, ``pixel_shuffle(conv2d(x, w))`` equals
    ``F.interpolate(x, scale_factor=scale, mode=mode)`` (``align_corners=False``).
    """
    taps = _taps(scale, mode)
    phase = torch.einsum("yi,xj->yxij", taps, taps).reshape(scale * scale, 3, 3)
    weight = torch.zeros(channels * scale * scale, channels, 3, 3, dtype=torch.float64)
    for c in range(channels):
        weight[c * scale * scale : (c + 1) * scale * scale, c] = phase
    return weight.float()


class RepConv(nn.Module):
    """A 3x3 convolution trained as ``3x3 + 1x1 + identity`` branches; :meth:`fuse` makes it one conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(x) + self.conv1(x) + x

    def fused_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` of the single 3x3 convolution equal to the block."""
        weight = self.conv3.weight.detach().clone()
        weight[:, :, 1:2, 1:2] += self.conv1.weight.detach()
        idx = torch.arange(weight.shape[0])
        weight[idx, idx, 1, 1] += 1.0
        return weight, self.conv3.bias.detach() + self.conv1.bias.detach()

    def load_fused(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Start from a plain convolution's weights (the 1x1 branch at zero)."""
        with torch.no_grad():
            w = weight.clone()
            idx = torch.arange(w.shape[0])
            w[idx, idx, 1, 1] -= 1.0
            self.conv3.weight.copy_(w)
            self.conv3.bias.copy_(bias)
            self.conv1.weight.zero_()
            self.conv1.bias.zero_()


def _hidden_layers(state: dict[str, torch.Tensor]) -> int:
    """How many hidden 3x3 convolutions (``body.<2i>``, each followed by its activation) ``state`` holds."""
    return sum(1 for k in state if k.startswith("body.") and k.endswith(".weight") and state[k].dim() == 4)


def with_identity_layers(state: dict[str, torch.Tensor], blocks: int, channels: int) -> dict[str, torch.Tensor]:
    """``state`` of a ``body`` of (3x3 conv, ReLU) pairs with identity convolutions appended up to ``blocks``:
    after a ReLU they change nothing, so a deeper network starts computing what the shallower one did."""
    theirs = _hidden_layers(state)
    if theirs >= blocks:
        return state
    eye = torch.zeros(channels, channels, 3, 3)
    eye[torch.arange(channels), torch.arange(channels), 1, 1] = 1.0
    grown = dict(state)
    for i in range(theirs, blocks):
        grown[f"body.{2 * i}.weight"], grown[f"body.{2 * i}.bias"] = eye.clone(), torch.zeros(channels)
    return grown


class PlainSR(nn.Module):
    """``head conv -> blocks x (conv, act) -> tail conv (+ base conv) -> PixelShuffle``.

    ``channels`` features at low resolution, ``blocks`` hidden 3x3 convolutions,
    ``act`` one of ``relu``/``prelu``, ``base`` the upsample the residual is
    added to (``bilinear``, ``nearest`` or ``none``), ``tail`` the kernel size
    of the last convolution (3 or 1), ``rep`` train-time branches (fused away
    by :meth:`fused`).
    """

    def __init__(
        self,
        scale: int = 4,
        channels: int = 32,
        blocks: int = 4,
        act: str = "relu",
        base: str = "bilinear",
        tail: int = 3,
        rep: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if act not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; choose from {sorted(_ACTIVATIONS)}")
        if base not in _BASES:
            raise ValueError(f"unknown base upsample {base!r}; choose from {list(_BASES)}")
        if tail not in (1, 3):
            raise ValueError(f"tail kernel must be 1 or 3, got {tail!r}")
        if scale < 1 or channels < 1 or blocks < 0:
            raise ValueError("scale and channels must be positive and blocks non-negative")
        self.scale, self.base, self.rep = scale, base, bool(rep)
        self.config = {"channels": channels, "blocks": blocks, "act": act, "base": base, "tail": tail}
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.head_act = _ACTIVATIONS[act](channels)
        body: list[nn.Module] = []
        for _ in range(blocks):
            conv = RepConv(channels) if rep else nn.Conv2d(channels, channels, 3, padding=1)
            body += [conv, _ACTIVATIONS[act](channels)]
        self.body = nn.Sequential(*body)
        self.tail = nn.Conv2d(channels, in_channels * scale * scale, tail, padding=tail // 2)
        self.shuffle = nn.PixelShuffle(scale)
        if base != "none":  # fixed, not a parameter, not saved
            self.register_buffer("base_weight", base_kernel(scale, base, in_channels), persistent=False)
        with torch.no_grad():  # start close to the base upsample
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tail(self.body(self.head_act(self.head(x))))
        if self.base != "none":
            out = out + F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.base_weight)
        return self.shuffle(out)

    def inference_params(self) -> dict[str, Any]:
        """Hyperparameters of the fused (inference) network."""
        return dict(self.config)

    def fused(self) -> PlainSR:
        """A plain copy (no re-parameterisable branches) computing the same function."""
        plain = PlainSR(self.scale, **self.config, in_channels=self.head.in_channels).to(self.head.weight.device)
        plain.load_state_dict(self.fused_state_dict())
        return plain.train(self.training)

    def fused_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict of :meth:`fused`, without building it twice."""
        state = {k: v.detach() for k, v in self.state_dict().items() if not k.startswith("body.")}
        for i, layer in enumerate(self.body):
            if isinstance(layer, RepConv):
                state[f"body.{i}.weight"], state[f"body.{i}.bias"] = layer.fused_weights()
            else:
                state.update({f"body.{i}.{k}": v.detach() for k, v in layer.state_dict().items()})
        return state

    def load_plain_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load weights of a plain (fused) network of the same shape, e.g. to fine-tune it.

        A network with fewer hidden layers (same channels) loads too: the
        layers it lacks are appended as identity convolutions, which after a
        ReLU leave its function unchanged, so a deeper model starts exactly
        where the shallower one ended.
        """
        state = self._with_identity_layers(state)
        if not self.rep:
            self.load_state_dict(state)
            return
        rest = {k: v for k, v in state.items() if not k.startswith("body.")}
        expected = {k for k in self.state_dict() if not k.startswith("body.")}
        if set(rest) != expected:
            raise ValueError("weights do not match this network's layers")
        self.load_state_dict({**self.state_dict(), **rest})
        for i, layer in enumerate(self.body):
            if isinstance(layer, RepConv):
                layer.load_fused(state[f"body.{i}.weight"], state[f"body.{i}.bias"])
            else:
                prefix = f"body.{i}."
                layer.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})

    def _with_identity_layers(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` with identity convolutions for the hidden layers it lacks (ReLU networks only)."""
        if self.config["act"] != "relu" and _hidden_layers(state) < self.config["blocks"]:
            raise ValueError("only a ReLU network can start from a shallower one (identity layers)")
        return with_identity_layers(state, self.config["blocks"], self.config["channels"])
