"""A peer model for side-by-side training: a ConvLSTM of OpenSTL's published Moving MNIST
configuration, written here from that description (docs/benchmarks.md; not OpenSTL's code).

The description (OpenSTL's ``configs/mmnist/ConvLSTM.py`` and its ConvLSTM, as published):

* frames 64x64x1 go in as 16x16x16 -- space-to-depth with patch 4 (``pixel_unshuffle``);
* 4 ConvLSTM layers of 128 hidden channels, 5x5 filters, stride 1, "same" padding, no layer
  norm, no biases; gates i, f, g, o from the input and the previous hidden state, no peepholes;
  h and c start at zero;
* a 1x1 convolution (no bias) from the top hidden state to the 16 patch channels, then
  depth-to-space back to 64x64x1: the prediction of the next frame (linear, not clipped);
* 20-frame clips, 10 in -> 10 out: at every step t = 0..18 the model predicts frame t + 1; its
  input is frame t for t < 10 and afterwards, with *scheduled sampling*, the true frame t with
  probability eta (per sequence and step) or else its own prediction of frame t. eta starts at
  1.0 and falls by 2e-5 per iteration to 0 at iteration 50,000; at test time eta = 0 (a pure
  rollout). The loss is the MSE over all 19 predicted frames;
* Adam, lr 5e-4, batch 16, a one-cycle learning-rate schedule.

One convolution on ``cat(x, h)`` gives the four gates: the same function and the same parameter
count as separate convolutions on x and on h (neither has a bias), and the faster layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from stae.errors import StaeError

# OpenSTL's published Moving MNIST table lists ConvLSTM at 15.0M parameters. Its cell also
# builds two layers that its forward pass never uses (a 5x5 conv 2*128 -> 128 and a 1x1 conv
# 2*128 -> 128, no biases): 819,200 + 32,768 parameters per layer, counted in the published
# figure but computing nothing. OPENSTL_UNUSED_PER_LAYER lets the docs reconcile the counts.
OPENSTL_PUBLISHED_PARAMS = 15.0e6
OPENSTL_UNUSED_PER_LAYER = 2 * 128 * 128 * 5 * 5 + 2 * 128 * 128


@dataclass(frozen=True)
class PeerConfig:
    """OpenSTL's Moving MNIST ConvLSTM settings (the defaults) and the data shape."""

    layers: int = 4
    hidden: int = 128
    kernel: int = 5
    patch: int = 4  # space-to-depth factor: 64x64x1 -> 16x16x16
    channels: int = 1
    size: int = 64
    context: int = 10  # frames in
    horizon: int = 10  # frames out
    lr: float = 5e-4
    batch_size: int = 16
    sampling_start: float = 1.0  # scheduled sampling: P(feed the true frame) at iteration 0
    sampling_rate: float = 2e-5  # ... falls by this per iteration
    sampling_stop: int = 50_000  # ... and is 0 from this iteration on

    def __post_init__(self) -> None:
        if self.layers < 1 or self.hidden < 1 or self.kernel < 1 or self.kernel % 2 == 0:
            raise StaeError(f"layers and hidden must be >= 1 and kernel odd, got {self.layers}, {self.hidden}, "
                            f"{self.kernel}")
        if self.patch < 1 or self.size % self.patch:
            raise StaeError(f"frame size {self.size} must be divisible by the patch size {self.patch}")
        if self.context < 1 or self.horizon < 1:
            raise StaeError(f"context and horizon must be >= 1, got {self.context} and {self.horizon}")


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer: gates from one bias-free conv on cat(x, h); (x, (h, c)) -> (h', c')."""

    def __init__(self, in_channels: int, hidden: int, kernel: int):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class PeerConvLSTM(nn.Module):
    """The peer: a stack of :class:`ConvLSTMCell` on space-to-depth frames; see the module docstring."""

    def __init__(self, config: PeerConfig = PeerConfig()):
        super().__init__()
        self.config = config
        cfg = config
        depth = cfg.channels * cfg.patch * cfg.patch
        self.cells = nn.ModuleList(
            ConvLSTMCell(depth if k == 0 else cfg.hidden, cfg.hidden, cfg.kernel) for k in range(cfg.layers))
        self.head = nn.Conv2d(cfg.hidden, depth, 1, bias=False)

    def _step(self, frame: torch.Tensor, state: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """One frame (B, C, H, W) in, the next frame out; ``state`` is updated in place."""
        x = F.pixel_unshuffle(frame, self.config.patch)
        for k, cell in enumerate(self.cells):
            state[k] = cell(x, *state[k])
            x = state[k][0]
        return F.pixel_shuffle(self.head(x), self.config.patch)

    def forward(self, clip: torch.Tensor, eta: float = 0.0, generator: Optional[torch.Generator] = None
                ) -> torch.Tensor:
        """Clip (B, T, C, H, W) with T >= context + 1 -> predictions of frames 1..T-1 (B, T-1, C, H, W).

        Inputs after the context are the true frame with probability ``eta`` per sequence and
        step (scheduled sampling), else the previous prediction; ``eta = 0`` is a pure rollout
        (the true frames after the context are then never read).
        """
        cfg = self.config
        b, t, c, h, w = clip.shape
        if t < cfg.context + 1 or (c, h, w) != (cfg.channels, cfg.size, cfg.size):
            raise StaeError(f"clip of shape {tuple(clip.shape)}: this peer takes (B, T >= {cfg.context + 1}, "
                            f"{cfg.channels}, {cfg.size}, {cfg.size})")
        hs = (h // cfg.patch, w // cfg.patch)
        zeros = clip.new_zeros(b, cfg.hidden, *hs)
        state = [(zeros, zeros) for _ in self.cells]
        preds: list[torch.Tensor] = []
        for step in range(t - 1):
            frame = clip[:, step]
            if step >= cfg.context:
                if eta > 0:
                    keep = (torch.rand(b, generator=generator) < eta).to(clip.dtype).to(clip.device)
                    keep = keep.view(b, 1, 1, 1)
                    frame = keep * frame + (1 - keep) * preds[-1]
                else:
                    frame = preds[-1]
            preds.append(self._step(frame, state))
        return torch.stack(preds, 1)

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        """Observe ``context`` (B, T0, C, H, W), then predict ``horizon`` frames (B, horizon, C, H, W)."""
        b, t0 = context.shape[:2]
        if t0 != self.config.context:
            raise StaeError(f"rollout: {t0} context frames given; this peer is built for {self.config.context}")
        if horizon < 1:
            raise StaeError(f"rollout horizon must be >= 1, got {horizon}")
        pad = context.new_zeros(b, horizon, *context.shape[2:])  # frames t0.. are never read at eta = 0
        return self.forward(torch.cat([context, pad], 1), eta=0.0)[:, t0 - 1:]


def sampling_eta(iteration: int, cfg: PeerConfig = PeerConfig()) -> float:
    """Scheduled sampling: P(feed the true frame) at ``iteration`` (0-based)."""
    if iteration >= cfg.sampling_stop:
        return 0.0
    return max(0.0, cfg.sampling_start - cfg.sampling_rate * iteration)


def one_cycle(frac: float, max_lr: float, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4) -> tuple[float, float]:
    """One-cycle schedule at progress ``frac`` in [0, 1] -> (lr, Adam beta1).

    The lr rises from max_lr / div_factor to max_lr over the first ``pct_start`` of training and
    falls to max_lr / div_factor / final_div_factor, both by cosine; beta1 moves the other way
    between 0.95 and 0.85 (the defaults of torch's ``OneCycleLR``, which OpenSTL uses with
    final_div_factor 1e4). Here progress is a fraction of a wall-clock budget, not of steps.
    """
    frac = min(max(frac, 0.0), 1.0)
    lo, hi, end = max_lr / div_factor, max_lr, max_lr / div_factor / final_div_factor

    def cos(a: float, b: float, p: float) -> float:
        return b + (a - b) * (1 + math.cos(math.pi * p)) / 2

    if frac <= pct_start:
        p = frac / pct_start if pct_start > 0 else 1.0
        return cos(lo, hi, p), cos(0.95, 0.85, p)
    p = (frac - pct_start) / (1 - pct_start)
    return cos(hi, end, p), cos(0.85, 0.95, p)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
