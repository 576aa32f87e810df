"""TemporalSR: one recurrent super-sampling step (reproject, decide per pixel, blend), for jittered frames.

Per frame: the previous high-resolution output (the *history*) is
reprojected by the motion vectors (``grid_sample``, bilinear), folded to
low resolution (space-to-depth: ``scale**2`` sub-pixel values per channel at
each low-resolution pixel), and a small convolutional network at low
resolution decides, for every high-resolution sub-pixel,

- ``a``: how much of this frame's new sample to blend into the history
  (the network sees the jitter as ``scale**2`` planes of how close this
  frame's sample lies to each sub-pixel centre, so it learns to write each
  sample where it landed),
- ``b``: how much to fall back to a plain upsample of the frame (history
  rejected: disocclusion, a cut, a lighting change the history missed),
- ``c``: a correction (detail, and what resampling blurred),

    out = history + a * (sample - history) + b * (base - history) + c

and PixelShuffle makes it whole again; the output is the next history. The
network also sees how far this frame's samples are from what the history
predicted at the same place (its strongest hint for rejection).

Everything but the reprojection runs at low resolution; the step is one
graph for ONNX (``forward``), and ``blend_folded`` takes an already
reprojected, folded history and returns the output folded, for engines that
reproject and unfold outside the graph (the CPU engine, with OpenCV).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from upscaler.archs.plainsr import base_kernel

__all__ = ["TemporalSR", "reproject", "sample_weights"]


def sample_weights(jitter: torch.Tensor, scale: int, sigma: float = 0.5) -> torch.Tensor:
    """``N x scale**2 x 1 x 1``: closeness of each frame's sample to each sub-pixel centre (Gaussian, HR pixels).

    A pixel at (x, y) sampled the scene at ``(x + 0.5 + jx, y + 0.5 + jy)``
    low-resolution pixels, which is ``((0.5 + jx) * scale, (0.5 + jy) * scale)``
    high-resolution pixels from its block's corner. Sub-pixel ``i * scale + j``
    (row ``i``, column ``j``) has its centre at ``(j + 0.5, i + 0.5)``.
    """
    centres = torch.arange(scale, dtype=jitter.dtype, device=jitter.device) + 0.5
    sx = ((0.5 + jitter[:, 0:1]) * scale).unsqueeze(-1)  # N x 1 x 1
    sy = ((0.5 + jitter[:, 1:2]) * scale).unsqueeze(-1)
    dx2 = (sx - centres.view(1, 1, scale)) ** 2  # N x 1 x s (columns)
    dy2 = (sy - centres.view(1, scale, 1)) ** 2  # N x s x 1 (rows)
    weights = torch.exp(-(dy2 + dx2) / (2 * sigma * sigma))  # N x s x s
    return weights.reshape(-1, scale * scale, 1, 1)


def reproject(history: torch.Tensor, motion: torch.Tensor, scale: int, mode: str = "bilinear") -> torch.Tensor:
    """The history where this frame's surfaces were: ``mode`` (bilinear or bicubic), border-clamped.

    ``motion`` (N x 2 x H x W, low-resolution pixels) holds, per low-resolution
    pixel, the offset to the same surface in the previous frame; every
    high-resolution pixel of a block moves with its block. The output is
    ``sH x sW`` (the size the motion implies) whatever the history's size, so
    a placeholder history (Triton's first request of a sequence holds a 1 x 1
    state) still gives a frame of the right size for ``forward`` to replace.
    """
    # Positions in FP32 whatever the network runs in: half precision has no integers above 2048 and
    # places a 4K frame's coordinates a pixel or more off (FP32 graphs are unchanged by this)
    half = history.dtype in (torch.float16, torch.bfloat16)
    work = torch.float32 if half else history.dtype
    offset = F.interpolate(motion.to(work) * scale, scale_factor=scale, mode="nearest")  # N x 2 x sH x sW, HR px
    hh, wh = offset.shape[-2:]
    xs = torch.arange(wh, dtype=work, device=history.device).view(1, 1, wh)
    ys = torch.arange(hh, dtype=work, device=history.device).view(1, hh, 1)
    # grid_sample's coordinates (align_corners=False): -1 and 1 are the outer edges of the frame
    gx = (2 * (xs + offset[:, 0]) + 1) / wh - 1
    gy = (2 * (ys + offset[:, 1]) + 1) / hh - 1
    grid = torch.stack([gx, gy], dim=-1)
    out = F.grid_sample(history.to(work), grid, mode=mode, padding_mode="border", align_corners=False)
    return out.to(history.dtype)


class TemporalSR(nn.Module):
    """One temporal super-sampling step; see the module docstring.

    ``channels`` features at low resolution, ``blocks`` hidden 3x3
    convolutions, ``history_channels`` features the folded history is
    projected to (1x1) before the first 3x3 convolution. The jitter's sample
    weights and the reset flag are constant over a frame, so they enter as a
    per-frame bias of the first convolution (a linear map), not as planes.
    """

    def __init__(
        self, scale: int = 4, channels: int = 32, blocks: int = 2, history_channels: int = 16, in_channels: int = 3
    ) -> None:
        super().__init__()
        if scale < 2 or channels < 1 or blocks < 0 or history_channels < 1:
            raise ValueError("scale must be at least 2, channels and history_channels positive, blocks >= 0")
        if in_channels != 3:
            raise ValueError("TemporalSR works on RGB frames")
        self.scale = scale
        self.config = {"channels": channels, "blocks": blocks, "history_channels": history_channels}
        s2 = scale * scale
        self.register_buffer("base_weight", base_kernel(scale, "bilinear", 3), persistent=False)
        self.history_proj = nn.Conv2d(3 * s2, history_channels, 1)
        # the frame, its error against the history's prediction, and history features
        self.head = nn.Conv2d(3 + 3 + history_channels, channels, 3, padding=1)
        self.frame_bias = nn.Linear(s2 + 1, channels)  # sample weights and the reset flag
        body: list[nn.Module] = []
        for _ in range(blocks):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*body)
        self.tail = nn.Conv2d(channels, 5 * s2, 1)  # a, b (per sub-pixel), c (per channel and sub-pixel)
        with torch.no_grad():  # start as "keep the history, blend each sample a little, no correction"
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()
            self.tail.bias[:s2].fill_(-2.0)
            self.tail.bias[s2 : 2 * s2].fill_(-4.0)

    def base(self, frame: torch.Tensor) -> torch.Tensor:
        """``N x 3s² x H x W``: the frame upsampled (PyTorch's bilinear), folded."""
        return F.conv2d(F.pad(frame, (1, 1, 1, 1), mode="replicate"), self.base_weight)

    def forward(
        self,
        frame: torch.Tensor,
        jitter: torch.Tensor,
        motion: torch.Tensor,
        history: torch.Tensor,
        reset: torch.Tensor,
    ) -> torch.Tensor:
        """``N x 3 x sH x sW`` output (and next history) from the frame (N x 3 x H x W, [0, 1]), its jitter
        (N x 2), motion (N x 2 x H x W), the previous output (N x 3 x sH x sW) and reset (N x 1: 1 when the
        history is only the frame upsampled: the first frame of a stream or after a cut).

        Where ``reset`` is 1 the history and motion are not read: the step
        starts from the frame upsampled (bilinear), so a caller may pass any
        history of any size there (a graph server's uninitialised state)."""
        s = self.scale
        warped = reproject(history, motion, s)
        start = F.interpolate(frame, scale_factor=s, mode="bilinear", align_corners=False)
        warped = torch.where(reset.reshape(-1, 1, 1, 1) > 0.5, start, warped)  # a select: NaN never leaks
        return self.forward_folded(frame, jitter, F.pixel_unshuffle(warped, s), reset)

    def forward_folded(
        self, frame: torch.Tensor, jitter: torch.Tensor, history: torch.Tensor, reset: torch.Tensor
    ) -> torch.Tensor:
        """The step after reprojection: ``history`` is the reprojected history folded (N x 3s² x H x W, channel
        ``c * s² + i * s + j`` holding sub-pixel row ``i``, column ``j`` of colour ``c``)."""
        return F.pixel_shuffle(self.blend_folded(frame, jitter, history, reset), self.scale)

    def blend_folded(
        self, frame: torch.Tensor, jitter: torch.Tensor, history: torch.Tensor, reset: torch.Tensor
    ) -> torch.Tensor:
        """``forward_folded`` before the final PixelShuffle: the output folded (N x 3s² x H x W).

        What the CPU engine runs: unfolding outside the graph (OpenCV) costs a
        fraction of ONNX Runtime's ``DepthToSpace``. The blend is written as
        ``(1 - a - b) * history + a * sample + b * base + c`` and the tail as
        three convolutions (slices of one weight), which ONNX Runtime runs in
        fewer full-size passes than the textbook form (no ``Split``).
        """
        s, s2 = self.scale, self.scale * self.scale
        n, _, h, w = frame.shape
        base = self.base(frame)
        weights = sample_weights(jitter, s)  # N x s² x 1 x 1
        share = (weights / weights.sum(dim=1, keepdim=True)).reshape(n, 1, 1, s2)
        folded = history.reshape(n, 3, s2, h, w)
        # what the history says this frame's samples should be: one weighted sum over the sub-pixels
        predicted = torch.matmul(share, history.reshape(n, 3, s2, h * w)).reshape(n, 3, h, w)
        features = torch.cat([frame, frame - predicted, self.history_proj(history)], dim=1)
        bias = self.frame_bias(torch.cat([weights.reshape(n, s2), reset.reshape(n, 1)], dim=1))
        x = self.body(F.relu(self.head(features) + bias.reshape(n, -1, 1, 1)))
        weight, tail_bias = self.tail.weight, self.tail.bias
        a = torch.sigmoid(F.conv2d(x, weight[:s2], tail_bias[:s2])).reshape(n, 1, s2, h, w)  # shared by colours
        b = torch.sigmoid(F.conv2d(x, weight[s2 : 2 * s2], tail_bias[s2 : 2 * s2])).reshape(n, 1, s2, h, w)
        c = F.conv2d(x, weight[2 * s2 :], tail_bias[2 * s2 :]).reshape(n, 3, s2, h, w)
        sample = frame.reshape(n, 3, 1, h, w)
        # history + a * (sample - history) + b * (base - history) + c
        blended = folded * (1.0 - a - b) + a * sample + b * base.reshape(n, 3, s2, h, w) + c
        return torch.clamp(blended.reshape(n, 3 * s2, h, w), 0.0, 1.0)  # the clamp last: no copy for the output

    def inference_params(self) -> dict[str, Any]:
        """Hyperparameters to rebuild this network."""
        return dict(self.config)
