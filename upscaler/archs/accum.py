"""AccumSR: a temporal step that keeps count of what it has accumulated, and learns when to drop it.

The state carried from frame to frame is four high-resolution planes: the
output colour and ``w``, the samples it has gathered per pixel (divided by
``cap``, so in [0, 1]). Per frame:

1. The state is reprojected by the motion vectors (``grid_sample``,
   bicubic: a slow pan resamples the history every frame, and bilinear blurs
   it a little each time) and folded to low resolution (``s²`` sub-pixels per
   low-resolution pixel).
2. This frame's samples are splatted to the sub-pixels they landed near:
   every low-resolution pixel sampled the scene at a known offset (the
   jitter), so each sub-pixel's Gaussian weight to each of the 3 x 3 nearest
   samples is a per-frame constant; one matrix product with the frame's nine
   shifted copies gives the splat (and, with bilinear weights, a
   jitter-aware upsample ``base``: the first frame and disoccluded pixels are
   registered where the samples were, not half a pixel off).
3. A small network at low resolution sees the frame, how far it is from what
   the history predicted, and the history (colour relative to ``base``, ``w``,
   and, when the caller gives depth, how far this frame's depth is from the
   history's: a disocclusion; with ``clip``, how far each sub-pixel's history lies outside the range of the
   frame's samples around it, a classical TAA's test), and says per sub-pixel how much of the history to keep (``r``),
   how much to trust the new samples (``m``), how much to lean on ``base``
   (``e``), and a correction ``c``.
4. A weighted mean, as a plain accumulation does, but with learned weights::

       n = r * w * cap                  (history samples still trusted)
       k = m * g                        (this frame's splat weight)
       colour = (n * history + k * splat + e * base) / (n + k + e) + c / (1 + n)
       w' = min(1, (n + k) / cap)

   On a still camera ``r`` stays near 1 and the mean converges to the
   samples' average; where history is stale (a cut, disocclusion, a light
   change) ``r`` drops and the step falls back to this frame.

5. With ``display`` the state stays that mean, but what is shown is a linear filter of it (the same for
   every colour): a weighted mean of jittered point samples is a blurred, aliased picture of the scene,
   and the least-squares reconstruction of the reference from it is sharper (``training.display`` fits
   it in closed form). ``display`` is the filters' kernel in blocks: 1 mixes the ``s²`` sub-pixels of one
   block, 3 its 3 x 3 neighbourhood of blocks (at x4 21 kMAC per pixel, two thirds of the network, and
   0.38 dB more on still shots than 1; at x2, where a block of four sub-pixels cannot sharpen itself,
   1.3 kMAC). Three filters: for frames with no jitter (their samples lie where every frame's did), for
   pixels whose motion is exactly zero (a still camera: the state holds the samples unresampled), and for
   the rest. ``detail`` adds to each filter a ``detail x detail`` one over the blocks' luma, its output added
   to every colour: the luma (what PSNR-Y and the eye weigh most) as sharp as a 3x3 filter of every colour
   makes it, the chroma as the 1x1 filter's, at a third of the multiply-adds (``training.display --detail``
   fits both in one pass; with ``--chroma as-is`` the 1x1 filter is identity and the luma filter holds the
   whole 3x3 fit less it: the chroma shown as accumulated, x4-temporal's form, whose CPU show pass has no
   1x1 filter to apply). The shown frame is never fed back: the state starts with it (three planes the step writes
   and never reads), so engines keep returning its first three planes.

Everything but the reprojection runs at low resolution. ``forward`` is the
whole step (one ONNX graph); ``blend_folded`` takes the already reprojected,
folded state and returns the new state folded. It is three parts:
``coefficients`` (the network, up to the per-sub-pixel weights of step 4:
``tail_logits``, its convolutions, then ``weigh``), ``combine`` (the weighted
mean) and the display filters. The CPU engine runs the convolutions and 3x3
filters as ONNX graphs and the rest in fused passes
(``upscaler.runtime.accum_cpu``; 1x1 filters in the pass that shows the
frame): as graph operators, the per-sub-pixel arithmetic and the weighted
mean took more than half the step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from upscaler.archs import DISPLAY_FILTERS, GAP_FLOOR, LEAN_FLOOR, LUMA
from upscaler.archs.plainsr import with_identity_layers
from upscaler.archs.temporal import reproject

__all__ = ["AccumSR", "jitter_coefficients", "lagrange_coefficients"]

#: High-resolution state planes: colour (3), accumulated weight (1), depth (1: the caller's, 0 without).
STATE_CHANNELS = 5


def _from_own_sample(jitter: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``N x s`` each: from the block's own sample to each sub-pixel column (x) and row (y), low-resolution
    pixels."""
    centres = (torch.arange(scale, dtype=jitter.dtype, device=jitter.device) + 0.5) / scale
    return centres.view(1, scale) - (0.5 + jitter[:, 0:1]), centres.view(1, scale) - (0.5 + jitter[:, 1:2])


def _outer(wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
    """``N x s² x 9`` from per-axis neighbour weights (``N x s x 3``): rows i, columns j of sub-pixels,
    neighbours (dy, dx)."""
    n, scale = wx.shape[:2]
    return (wy.view(n, scale, 1, 3, 1) * wx.view(n, 1, scale, 1, 3)).reshape(n, scale * scale, 9)


def jitter_coefficients(jitter: torch.Tensor, scale: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame weights of the 3 x 3 nearest samples for every sub-pixel: ``(bilinear, gaussian)``, each
    ``N x s² x 9`` (neighbour ``(dy + 1) * 3 + (dx + 1)``).

    Sub-pixel ``(i, j)`` of a block has its centre ``((j + 0.5) / s, (i + 0.5) / s)`` low-resolution pixels
    from the block's corner; the block's own sample lies at ``(0.5 + jx, 0.5 + jy)`` and its neighbours' one
    pixel further each way. ``sigma`` is the splat's width in high-resolution pixels.
    """
    offsets = torch.tensor([-1.0, 0.0, 1.0], dtype=jitter.dtype, device=jitter.device)
    ux, uy = _from_own_sample(jitter, scale)
    # N x s x 3: from each neighbour's sample to each sub-pixel column (row), in low-resolution pixels
    dx, dy = ux.unsqueeze(-1) - offsets.view(1, 1, 3), uy.unsqueeze(-1) - offsets.view(1, 1, 3)
    bx, by = torch.clamp(1.0 - dx.abs(), min=0.0), torch.clamp(1.0 - dy.abs(), min=0.0)
    k = 0.5 * (scale / sigma) ** 2
    gx, gy = torch.exp(-k * dx * dx), torch.exp(-k * dy * dy)
    return _outer(by, bx), _outer(gy, gx)


def lagrange_coefficients(jitter: torch.Tensor, scale: int) -> torch.Tensor:
    """``N x s² x 9``: for every sub-pixel, the weights of the 3 x 3 nearest samples that interpolate them there
    (quadratic Lagrange per axis through the samples at -1, 0 and +1 pixels from the block's own; exact at a
    sample). The splat's value where ``splat = "lagrange"``: a sub-pixel between samples gets what they say
    about that point, not a distance-weighted average of them (which, at x2 without jitter, is a 2x2
    nearest-neighbour upsample)."""

    def taps(u: torch.Tensor) -> torch.Tensor:  # N x s -> N x s x 3
        return torch.stack([u * (u - 1) / 2, 1 - u * u, u * (u + 1) / 2], dim=-1)

    ux, uy = _from_own_sample(jitter, scale)
    return _outer(taps(uy), taps(ux))


def _mix(frame: torch.Tensor, coefficients: torch.Tensor, k: int) -> torch.Tensor:
    """``N x 3K x H x W`` (channel ``c * K + k``): each colour of each frame mixed over its 3 x 3 neighbours
    (edges replicated) with that frame's ``coefficients`` (``N x K x 9``, neighbour ``(dy + 1) * 3 + dx + 1``).
    ``frame`` is ``N x 3 x H x W`` (RGB).

    One grouped convolution whose kernels are the coefficients (a group per frame and colour): in an
    exported graph (one frame, so three groups) ONNX Runtime runs it as one convolution, where stacking
    nine shifted copies and a matrix product cost several passes over the output."""
    n, c, h, w = frame.shape
    if n == 1:  # what graphs are exported with: constant shapes (ONNX's Conv needs a kernel of known shape)
        kernels = coefficients.reshape(k, 1, 3, 3).repeat(3, 1, 1, 1)
        return F.conv2d(F.pad(frame, (1, 1, 1, 1), mode="replicate"), kernels, groups=3)
    padded = F.pad(frame.reshape(1, n * c, h, w), (1, 1, 1, 1), mode="replicate")
    kernels = coefficients.unsqueeze(1).expand(n, c, k, 9).reshape(n * c * k, 1, 3, 3)
    return F.conv2d(padded, kernels, groups=n * c).reshape(n, c * k, h, w)


def _outside(colour: torch.Tensor, frame: torch.Tensor, s2: int) -> torch.Tensor:
    """N x s² x H x W: how far each sub-pixel's history (luma of ``colour``, N x 3s² x H x W folded) lies outside
    the range of this frame's samples around it (luma, the 3 x 3 low-resolution pixels' minimum and maximum;
    ``frame`` N x 3 x H x W), 0 inside: the test a classical TAA clamps its history with. A still camera's
    history, the samples of many jitters, stays inside what its neighbours span where detail aliases it; a fade
    or a cut takes it outside in flat regions. A difference of two values (the frame minus what the history
    predicts, which the network also sees) cannot tell those apart; this nonlinear test, given as a feature,
    lets a small network learn to."""
    luma = torch.tensor(LUMA, dtype=frame.dtype, device=frame.device)
    y = F.conv2d(frame, luma.reshape(1, 3, 1, 1))
    padded = F.pad(y, (1, 1, 1, 1), mode="replicate")
    hi, lo = F.max_pool2d(padded, 3, stride=1), -F.max_pool2d(-padded, 3, stride=1)
    per_subpixel = torch.kron(luma.reshape(1, 3), torch.eye(s2, dtype=frame.dtype, device=frame.device))
    history = F.conv2d(colour, per_subpixel.reshape(s2, 3 * s2, 1, 1))  # sub-pixel i from planes c * s² + i
    return F.relu((history - 0.5 * (hi + lo)).abs() - 0.5 * (hi - lo))


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """``softplus`` written as ``relu(x) + log(1 + exp(-|x|))`` (the same values): ONNX Runtime's CPU
    Softplus is scalar code, ten times the time of these vectorised operators together."""
    return F.relu(x) + torch.log1p(torch.exp(-x.abs()))


class AccumSR(nn.Module):
    """One accumulating temporal step; see the module docstring.

    ``channels`` features at low resolution, ``blocks`` hidden 3x3 convolutions, ``history_channels``
    features the folded state is projected to (1x1), ``cap`` the most samples a pixel's history counts,
    ``sigma`` the splat's width (high-resolution pixels). ``keep_offset`` is added to the keep logit:
    at x4 a sub-pixel gets about a tenth of a sample per frame, so any steady decay of the history costs
    most of what it gathers, and a short training unroll cannot show that; the offset makes keeping the
    default the network must argue against (0: the first training stage's form). ``settle`` divides the
    correction by ``1 + n``: inferred detail gives way to real samples as they gather (False: the first
    stage's form); ``settle_base`` divides ``e``, the lean on the jitter-aware upsample, the same way.
    ``fresh_correction`` (in place of ``settle``) scales the correction by this frame's share of the mean,
    ``(k + e) / (n + k + e)``: the history is the previous output, so a correction added whole every frame
    piles up in it (on a still shot its fixed point is the correction over ``k``, several times it), while
    this share makes the fixed point the new samples' mean plus the correction once. ``base_decay``
    multiplies ``e`` by ``exp(-base_decay * n)``: the upsample is blended in every frame while a sub-pixel
    gathers about a tenth of a sample, so even a small lean weighs as much as the samples at the fixed point
    (a still shot converges to a blend of the samples and the blurred upsample); the decay makes it a start
    that the gathered samples replace. ``splat`` is what a sample gives the sub-pixels around it:
    ``gaussian``, the samples' mean weighted by distance (x4-temporal), or ``lagrange``, their interpolation at
    the sub-pixel (``lagrange_coefficients``; the weight it counts stays the Gaussian's): at x2 an unjittered
    sample is as far from each of the four sub-pixels of its block, the Gaussian mean makes 2x2 blocks of it,
    and the step counts them again every frame. ``display`` adds the shown-frame filters (step 5 of the
    module docstring; they start as identity, so weights without them load and behave as before). ``clip``
    adds the history's range test to what the network sees (``_outside``; read with zero weights when weights
    without it load, so a stage may add it). ``hold`` is added to the keep logit where the caller's ``hold`` plane
    is 1: pixels a still, jittered camera has kept seeing unchanged (``upscaler.runtime.hold``), whose history a
    still camera should keep whole (0: the network alone decides, as trained; no weight depends on it).
    ``hold_correction`` is the share of the correction kept at those pixels (1: all of it, as trained; 0:
    none, so the inferred detail fades from the history and a held pixel converges to its samples' mean).
    """

    state_channels = STATE_CHANNELS

    def __init__(
        self,
        scale: int = 4,
        channels: int = 32,
        blocks: int = 2,
        history_channels: int = 16,
        cap: float = 16.0,
        sigma: float = 0.5,
        keep_offset: float = 3.0,
        settle: bool = True,
        settle_base: bool = False,
        fresh_correction: bool = False,
        base_decay: float = 0.0,
        splat: str = "gaussian",
        display: int = 0,
        detail: int = 0,
        clip: bool = False,
        hold: float = 0.0,
        hold_correction: float = 1.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if scale < 2 or channels < 1 or blocks < 0 or history_channels < 1 or cap < 1 or sigma <= 0:
            raise ValueError("scale >= 2, channels and history_channels positive, blocks >= 0, cap >= 1, sigma > 0")
        if in_channels != 3:
            raise ValueError("AccumSR works on RGB frames")
        if splat not in ("gaussian", "lagrange"):
            raise ValueError(f"splat must be gaussian or lagrange, got {splat!r}")
        if int(display) not in (0, 1, 3):
            raise ValueError(f"display must be 0 (none), 1 or 3 (the filters' kernel), got {display!r}")
        if int(detail) not in (0, 1, 3) or (detail and int(display) != 1):
            raise ValueError(f"detail must be 0 (none), 1 or 3 (the luma filters' kernel), with display 1: {detail!r}")
        self.scale, self.cap, self.sigma = scale, float(cap), float(sigma)
        self.keep_offset, self.settle, self.settle_base = float(keep_offset), bool(settle), bool(settle_base)
        self.fresh_correction, self.base_decay, self.splat = bool(fresh_correction), float(base_decay), splat
        self.config = {"channels": channels, "blocks": blocks, "history_channels": history_channels,
                       "cap": float(cap), "sigma": float(sigma), "keep_offset": float(keep_offset),
                       "settle": bool(settle), "settle_base": bool(settle_base),
                       "fresh_correction": bool(fresh_correction), "base_decay": float(base_decay)}  # fmt: skip
        if splat != "gaussian":  # recorded only where it differs: older weights' metadata stays as it was
            self.config["splat"] = splat
        self.clip = bool(clip)
        if clip:  # the same
            self.config["clip"] = True
        self.hold = float(hold)
        if hold:  # the same
            self.config["hold"] = self.hold
        if not 0.0 <= hold_correction <= 1.0:
            raise ValueError(f"hold_correction must be within [0, 1], got {hold_correction!r}")
        self.hold_correction = float(hold_correction)
        if hold_correction != 1.0:  # the same
            self.config["hold_correction"] = self.hold_correction
        s2 = scale * scale
        self.display_planes = 3 if display else 0
        if display:  # the same: recorded only when on
            self.config["display"] = taps = int(display)
            self.display = nn.Conv2d(s2, 3 * s2, taps)  # moving, still, unjittered; edges replicated in _display
            for name in DISPLAY_FILTERS:
                self.show_as_is(name)
        if detail:  # the same; zero: nothing added, so weights without them load and show what they did
            self.config["detail"] = int(detail)
            self.detail = nn.Conv2d(s2, 3 * s2, int(detail))  # moving, still, unjittered, as ``display``
            nn.init.zeros_(self.detail.weight)
            nn.init.zeros_(self.detail.bias)
        # colour - base, weight, depth disagreement (and, with ``clip``, how far outside the frame's range)
        self.history_proj = nn.Conv2d((6 if clip else 5) * s2, history_channels, 1)
        self.head = nn.Conv2d(3 + 3 + history_channels, channels, 3, padding=1)
        self.frame_bias = nn.Linear(s2 + 1, channels)  # the own sample's splat weights and the reset flag
        body: list[nn.Module] = []
        for _ in range(blocks):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*body)
        self.tail = nn.Conv2d(channels, 6 * s2, 1)  # r, m, e per sub-pixel; c per colour and sub-pixel
        with torch.no_grad():  # start as a plain accumulation: keep history, trust samples, lean on base little
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()
            self.tail.bias[:s2].fill_(4.0)
            self.tail.bias[s2 : 2 * s2].fill_(4.0)
            self.tail.bias[2 * s2 : 3 * s2].fill_(-3.0)

    def start_state(self, frame: torch.Tensor) -> torch.Tensor:
        """The state a stream starts from: the frame upsampled (bilinear) with nothing accumulated, no depth
        (with ``display``, the shown colour before it: the same upsample)."""
        up = F.interpolate(frame, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return torch.cat([up] * (2 if self.display_planes else 1) + [torch.zeros_like(up[:, :2])], dim=1)

    def forward(
        self,
        frame: torch.Tensor,
        jitter: torch.Tensor,
        motion: torch.Tensor,
        history: torch.Tensor,
        reset: torch.Tensor,
        depth: torch.Tensor | None = None,
        hold: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The next state (N x 5 x sH x sW: output colour, the accumulated weight, depth; with ``display``
        N x 8, the shown colour first) from the frame (N x 3 x H x W, [0, 1]), its jitter (N x 2), motion
        (N x 2 x H x W), the previous state, reset (N x 1) and depth (N x 1 x H x W, linear, any unit; zeros
        when the caller has none). Where ``reset`` is 1 the state and motion are not read (any state of any
        size will do). ``hold`` (N x 1 x H x W, 0 or 1; None: none) marks the pixels whose keep logit gets ``hold``."""
        s, d = self.scale, self.display_planes
        warped = reproject(history[:, d:], motion, s, mode="bicubic")  # FP32 positions, as the first design
        warped = torch.where(reset.reshape(-1, 1, 1, 1) > 0.5, self.start_state(frame)[:, d:], warped)
        folded = F.pixel_unshuffle(warped, s)
        return F.pixel_shuffle(self.blend_folded(frame, jitter, folded, reset, depth, motion, hold), s)

    def blend_folded(
        self,
        frame: torch.Tensor,
        jitter: torch.Tensor,
        history: torch.Tensor,
        reset: torch.Tensor,
        depth: torch.Tensor | None = None,
        motion: torch.Tensor | None = None,
        hold: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The step after reprojection, folded: ``history`` is the reprojected state folded (N x 5s² x H x W,
        channel ``c * s² + i * s + j``: plane ``c`` (colour 0-2, weight 3, depth 4) of sub-pixel row ``i``,
        column ``j``; with ``display``, the planes it reads: not the shown colour); returns the new state in
        the same layout (with ``display``, the shown colour's 3s² channels first). ``motion`` (N x 2 x H x W)
        is read by ``display`` only (None: zero, a still camera); ``hold`` as ``forward``'s."""
        s2 = self.scale * self.scale
        n, _, h, w = frame.shape
        if depth is None:
            depth = frame.new_zeros(n, 1, h, w)
        colour = history[:, : 3 * s2]
        *weights, gathered = self.coefficients(frame, jitter, colour, history[:, 3 * s2 : 4 * s2],
                                               history[:, 4 * s2 :], reset, depth, hold)  # fmt: skip
        result = self.combine(frame, jitter, colour, *weights)
        state = [result, gathered, depth.expand(n, s2, h, w)]
        if self.display_planes:
            state.insert(0, self._display(result.reshape(n, 3, s2, h, w), jitter, motion, reset))
        return torch.cat(state, dim=1)

    def coefficients(
        self,
        frame: torch.Tensor,
        jitter: torch.Tensor,
        colour: torch.Tensor,
        weight: torch.Tensor,
        previous_depth: torch.Tensor,
        reset: torch.Tensor,
        depth: torch.Tensor,
        hold: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """The network's part of the step, folded like ``blend_folded``'s history: per sub-pixel (N x s² x H x
        W each) the weights of the history, the splat and the base in the new colour and the correction's
        scale; the correction (N x 3s² x H x W); the new accumulated weight (N x s² x H x W). ``colour``,
        ``weight`` and ``previous_depth`` are the reprojected state's planes, folded. ``combine`` makes the
        colour from all but the last. Two parts: ``tail_logits`` (the convolutions) and ``weigh`` (per sub-pixel
        arithmetic); the CPU engine's graph is the first, its fused pass (``runtime.accum_cpu``) does the
        second with the mean: as graph operators, each a pass over memory the size of the output, it cost
        more than the network's convolutions."""
        tail = self.tail_logits(frame, jitter, colour, weight, previous_depth, reset, depth)
        return self.weigh(tail, weight, reset, self.splat_gain(jitter), hold)

    def tail_logits(self, frame, jitter, colour, weight, previous_depth, reset, depth) -> torch.Tensor:
        """N x 6s² x H x W: the network's last convolution (``coefficients``' arguments): per sub-pixel the logits
        of keeping the history (``r``), trusting the samples (``m``) and leaning on the upsample (``e``), then
        the correction (3s², colour-major)."""
        return self.network(frame, jitter, colour, weight, self.depth_gap(depth, previous_depth), reset)

    def network(self, frame, jitter, colour, weight, apart, reset) -> torch.Tensor:
        """``tail_logits`` from the depth gap (``depth_gap``, N x s² x H x W) in place of the two depths: the CPU
        graph (its engine computes the gap in place, or passes zeros for a stream without depth)."""
        n = frame.shape[0]
        weight = torch.clamp(weight, min=0.0) * (1.0 - reset.reshape(n, 1, 1, 1))
        bilinear, gaussian = jitter_coefficients(jitter, self.scale, self.sigma)
        own = gaussian[:, :, 4]  # the block's own sample
        history = self._project(colour, frame, bilinear, weight, apart)
        features = torch.cat([frame, frame - self._predicted(colour, own), history], dim=1)
        bias = self.frame_bias(torch.cat([own, reset.reshape(n, 1)], dim=1))
        x = self.body(F.relu(self.head(features) + bias.reshape(n, -1, 1, 1)))
        return self.tail(x)

    def splat_gain(self, jitter: torch.Tensor) -> torch.Tensor:
        """N x s²: this frame's splat weight per sub-pixel (the Gaussian weights of its 3 x 3 nearest samples,
        summed): what a sub-pixel gathers this frame."""
        return jitter_coefficients(jitter, self.scale, self.sigma)[1].sum(dim=2)

    def weigh(self, tail: torch.Tensor, weight: torch.Tensor, reset: torch.Tensor, gain: torch.Tensor,
              hold: torch.Tensor | None = None):  # fmt: skip
        """``coefficients`` from ``tail_logits``' output, the reprojected ``weight`` (folded), ``splat_gain`` and
        ``hold`` (``forward``'s). What the CPU engine's fused mean computes per sub-pixel
        (``runtime.accum_cpu._weigh``)."""
        s2 = self.scale * self.scale
        n = tail.shape[0]
        # a count is never negative: bicubic reprojection overshoots where it jumps (the edge of what was
        # gathered), and a negative count can cancel the others in the weighted mean below
        weight = torch.clamp(weight, min=0.0) * (1.0 - reset.reshape(n, 1, 1, 1))
        logit = tail[:, :s2] + self.keep_offset
        if hold is not None and self.hold:
            logit = logit + self.hold * hold
        keep = torch.sigmoid(logit) * weight * self.cap
        new = torch.sigmoid(tail[:, s2 : 2 * s2]) * gain.reshape(n, s2, 1, 1)
        lean = _softplus(tail[:, 2 * s2 : 3 * s2]) + LEAN_FLOOR
        if self.settle_base:  # the blurred base gives way to real samples as they gather, as the correction does
            lean = lean * (1.0 / (1.0 + keep))
        if self.base_decay:  # ... and is gone once a few have: it is added every frame, the samples a tenth each
            lean = lean * torch.exp(-self.base_decay * keep)
        inverse = 1.0 / (keep + new + lean)  # per sub-pixel, shared by the colours: a third of the work
        if self.fresh_correction:  # corrects this frame's share only: it does not pile up in the history
            scale = (new + lean) * inverse
        elif self.settle:  # real samples take over from inferred detail as they gather
            scale = 1.0 / (1.0 + keep)
        else:
            scale = torch.ones_like(keep)
        if hold is not None and self.hold:  # a held pixel keeps this share of the correction
            scale = scale * (1.0 - (1.0 - self.hold_correction) * hold)
        gathered = torch.clamp((keep + new) / self.cap, max=1.0)
        return keep * inverse, new * inverse, lean * inverse, scale, tail[:, 3 * s2 :], gathered

    def _predicted(self, colour: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W: what the history says this frame's samples are (its sub-pixels weighted by the own
        sample's splat weights, ``own``: N x s²)."""
        n, _, h, w = colour.shape
        share = (own / own.sum(dim=1, keepdim=True)).reshape(n, 1, 1, own.shape[1])
        return torch.matmul(share, colour.reshape(n, 3, own.shape[1], h * w)).reshape(n, 3, h, w)

    def combine(self, frame, jitter, colour, history_weight, splat_weight, base_weight, scale, correction):
        """N x 3s² x H x W: the new colour, folded, from the reprojected ``colour`` and ``coefficients``'
        output: the weighted mean of the history, this frame's splat and the jitter-aware upsample, plus the
        scaled correction, clamped to [0, 1]."""
        s2 = self.scale * self.scale
        n, _, h, w = frame.shape
        kernels = self.mix_kernels(jitter)
        base = _mix(frame, kernels[:, 0], s2).reshape(n, 3, s2, h, w)
        splat = _mix(frame, kernels[:, 1], s2)
        a, b, e, scale = (x.unsqueeze(1) for x in (history_weight, splat_weight, base_weight, scale))
        mixed = a * colour.reshape(n, 3, s2, h, w) + b * splat.reshape(n, 3, s2, h, w) + e * base
        mixed = mixed + scale * correction.reshape(n, 3, s2, h, w)
        return torch.clamp(mixed, 0.0, 1.0).reshape(n, 3 * s2, h, w)

    def mix_kernels(self, jitter: torch.Tensor) -> torch.Tensor:
        """N x 2 x s² x 9: this frame's weights of each sub-pixel's 3 x 3 nearest samples in the base (bilinear)
        and in the splat (neighbour ``(dy + 1) * 3 + dx + 1``)."""
        bilinear, gaussian = jitter_coefficients(jitter, self.scale, self.sigma)
        if self.splat == "lagrange":
            splat = lagrange_coefficients(jitter, self.scale)
        else:
            splat = gaussian / gaussian.sum(dim=2, keepdim=True)
        return torch.stack([bilinear, splat], dim=1)

    def _display(self, result: torch.Tensor, jitter: torch.Tensor, motion: torch.Tensor | None,
                 reset: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """N x 3s² x H x W: the shown colour, one of ``display``'s filters over the folded ``result`` (N x 3 x s²
        x H x W): the unjittered one where this frame's jitter is exactly zero (its samples lie where every
        frame's did: a video, or a renderer without jitter), else the still one where the pixel's motion is
        exactly zero or the stream starts (``reset``: nothing was resampled, whatever motion an engine passes
        then), else the moving one."""
        n, _, s2, h, w = result.shape
        planes = result.reshape(n * 3, s2, h, w)
        r = self.display.kernel_size[0] // 2
        if r:
            planes = F.pad(planes, (r, r, r, r), mode="replicate")
        every = self.display(planes).reshape(n, 3, 3 * s2, h, w)
        if hasattr(self, "detail"):  # one luma term per filter, the same for every colour
            every = every + self.luma_detail(result).reshape(n, 1, 3 * s2, h, w)
        moving, still, unjittered = every[:, :, :s2], every[:, :, s2 : 2 * s2], every[:, :, 2 * s2 :]
        if motion is None:
            motion = result.new_zeros(n, 2, h, w)
        resting = torch.maximum((motion.abs().amax(dim=1) == 0).to(result.dtype).reshape(n, 1, 1, h, w),
                                (reset > 0.5).to(result.dtype).reshape(n, 1, 1, 1, 1))  # fmt: skip
        shown = moving + resting * (still - moving)
        centred = (jitter.abs().amax(dim=1) == 0).to(result.dtype).reshape(n, 1, 1, 1, 1)
        return torch.clamp(shown + centred * (unjittered - shown), 0.0, 1.0).reshape(n, 3 * s2, h, w)

    def luma_detail(self, result: torch.Tensor) -> torch.Tensor:
        """N x 3s² x H x W: ``detail``'s three filters over the luma of the folded ``result`` (N x 3 x s² x H x W;
        ``LUMA``), its edges replicated."""
        luma = (result * result.new_tensor(LUMA).reshape(1, 3, 1, 1, 1)).sum(dim=1)
        r = self.detail.kernel_size[0] // 2
        return self.detail(F.pad(luma, (r, r, r, r), mode="replicate") if r else luma)

    def load_plain_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load weights; with ``display``, weights without the shown-colour filters keep them as they start
        (identity: the shown colour is the state's, as before), so a stage may add them to shipped weights.
        Weights of a smaller network of the same channels load too (``_grown``): a stage starts where it
        ended."""
        for part in ("display", "detail"):  # filters the weights lack start as they do here
            if hasattr(self, part) and f"{part}.weight" not in state:
                start = getattr(self, part).state_dict()
                state = {**state, **{f"{part}.{k}": v.detach().clone() for k, v in start.items()}}
        self.load_state_dict(self._grown(state))

    def _grown(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` of a network with fewer hidden layers or history channels made this one's, computing the
        same: identity layers appended (after a ReLU they change nothing), and the history channels it lacks
        projected as this network starts (random) but read by the head with zero weights, so they learn."""
        state = with_identity_layers(state, self.config["blocks"], self.config["channels"])
        state = self._reading_all(state)
        theirs, ours = state["history_proj.weight"].shape[0], self.config["history_channels"]
        if theirs >= ours:
            return state
        start = {k: v.detach() for k, v in self.state_dict().items()}
        head = state["head.weight"]
        unread = head.new_zeros(head.shape[0], ours - theirs, *head.shape[2:])
        return {
            **state,
            "history_proj.weight": torch.cat([state["history_proj.weight"], start["history_proj.weight"][theirs:]]),
            "history_proj.bias": torch.cat([state["history_proj.bias"], start["history_proj.bias"][theirs:]]),
            "head.weight": torch.cat([head, unread], dim=1),
        }

    def _reading_all(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` of a network without ``clip`` made one with it, computing the same: the projection reads
        the new planes with zero weights."""
        proj, inputs = state["history_proj.weight"], self.history_proj.weight.shape[1]
        if proj.shape[1] >= inputs:
            return state
        unread = proj.new_zeros(proj.shape[0], inputs - proj.shape[1], *proj.shape[2:])
        return {**state, "history_proj.weight": torch.cat([proj, unread], dim=1)}

    def display_filters(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``display``'s filters that are not identity, by name (``DISPLAY_FILTERS``): ``(weight, bias)``, the
        weight ``s² x s² x k x k`` over one colour's folded planes. A filter missing here shows the state as it
        is (x4-temporal's unjittered one), so an engine that runs them one by one may skip it."""
        found = {}
        for name in DISPLAY_FILTERS:
            weight, bias = self._filter(name)
            if not (torch.equal(weight, self._identity().to(weight)) and not bias.any()):
                found[name] = (weight.detach(), bias.detach())
        return found

    def detail_filters(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``detail``'s filters that add something, by name (``DISPLAY_FILTERS``): ``(weight, bias)``, the weight
        ``s² x s² x k x k`` over the luma's folded planes; none without ``detail``."""
        if not hasattr(self, "detail"):
            return {}
        found = {name: tuple(x.detach() for x in self._filter(name, "detail")) for name in DISPLAY_FILTERS}
        return {name: (w, b) for name, (w, b) in found.items() if w.any() or b.any()}

    def show_as_is(self, name: str) -> None:
        """Set display filter ``name`` (``DISPLAY_FILTERS``) to identity, its detail filter to zero: it shows the
        state as it is."""
        weight, bias = self._filter(name)
        with torch.no_grad():
            weight.copy_(self._identity())
            bias.zero_()
            for x in self._filter(name, "detail") if hasattr(self, "detail") else ():
                x.zero_()

    def _filter(self, name: str, part: str = "display") -> tuple[torch.Tensor, torch.Tensor]:
        """Filter ``name``'s weight (``s² x s² x k x k``) and bias in ``part`` (``display`` or ``detail``): views."""
        s2, k, conv = self.scale * self.scale, DISPLAY_FILTERS.index(name), getattr(self, part)
        return conv.weight[k * s2 : (k + 1) * s2], conv.bias[k * s2 : (k + 1) * s2]

    def _identity(self) -> torch.Tensor:
        """The identity display filter's weight (``s² x s² x k x k``)."""
        s2, taps = self.scale * self.scale, self.display.kernel_size[0]
        eye = torch.zeros(s2, s2, taps, taps)
        eye[torch.arange(s2), torch.arange(s2), taps // 2, taps // 2] = 1.0
        return eye

    def _project(self, colour, frame, bilinear, weight, apart) -> torch.Tensor:
        """``history_proj`` of (colour - base, weight, apart; with ``clip``, ``_outside``), ``base`` the frame's
        jitter-aware upsample (its ``bilinear`` weights, N x s² x 9), without building that stack: the 1x1
        convolution is linear, so it is the sum of its weight's slices applied to each part. The base's part is
        one 3x3 convolution of the frame whose kernel folds the projection into the upsample's weights (in an
        exported graph, one frame: the 3s²-plane upsample is never made, nor reordered for the convolutions)."""
        s2 = self.scale * self.scale
        p, bias = self.history_proj.weight, self.history_proj.bias
        colour_part = p[:, : 3 * s2]
        out = F.conv2d(colour, colour_part, bias) + F.conv2d(weight, p[:, 3 * s2 : 4 * s2])
        out = out + F.conv2d(apart, p[:, 4 * s2 : 5 * s2])
        if self.clip:
            out = out + F.conv2d(_outside(colour, frame, s2), p[:, 5 * s2 :])
        if frame.shape[0] != 1:  # a batch: each frame its own jitter
            return out - F.conv2d(_mix(frame, bilinear, s2), colour_part)
        folded = torch.matmul(colour_part.reshape(-1, 3, 1, s2), bilinear.reshape(1, 1, s2, 9))  # O x 3 x 1 x 9
        kernel = folded.reshape(-1, 3, 3, 3)
        return out - F.conv2d(F.pad(frame, (1, 1, 1, 1), mode="replicate"), kernel)

    @staticmethod
    def depth_gap(depth: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """N x s² x H x W in [0, 1]: how far this frame's depth (N x 1 x H x W) is from the reprojected
        history's at each sub-pixel (folded), relative to the farther of the two: near 0 on one surface,
        near 1 where the history saw another (a disocclusion, or a surface that moved in front). The
        network weighs it with what else it sees (a jittered depth buffer flickers along edges); without
        depth (zeros on both sides) it is 0 everywhere. The CPU engine's is ``runtime.accum_cpu.depth_gap``."""
        return (depth - previous).abs() / (torch.maximum(depth, previous) + GAP_FLOOR)

    def inference_params(self) -> dict[str, Any]:
        """Hyperparameters to rebuild this network."""
        return dict(self.config)
