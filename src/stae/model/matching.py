"""Block matching between consecutive input frames, an extra input of the memory
(``ModelConfig.block_matching``; beyond the paper, docs/model.md#block-matching-option).

The paper's memory must discover motion from the encoder's pooled features alone. On Moving
MNIST it does; on photographs moving about a pixel per frame it does not within a CPU budget:
even taught the true flow, the vanilla model's predicted flow stayed at the zero flow's error
(docs/training.md#flow-supervision). This module hands the memory the motion it observed, as
learned flow networks do with a cost volume (PWC-Net, RAFT), here parameter-free::

    cost_d(p) = box_w * (Y_t(p) - Y_{t-1}(p + d))^2       every d in [-r, r]^2 (image pixels)
    weights   = softmax_d(-TEMPERATURE * cost_d / mean_d cost_d)
    O_t(p)    = sum_d weights_d(p) * d                     soft-argmin: sub-pixel, differentiable

``O_t`` is the backward flow from frame t to frame t-1 (``Y_t(p) ~ Y_{t-1}(p + O_t(p))``, the
convention of :func:`stae.model.warp.warp`), so under constant velocity it is the flow that
predicts frame t+1 from frame t. The memory receives ``O_t`` in feature-grid pixels and the
matching's confidence (the largest weight) average-pooled onto the feature grid: three channels
beside x_t. Colour frames are matched on their channel mean. The first frame of a stream has no
predecessor and is matched with itself (zero motion).

``refine`` rounds (``ModelConfig.matching_refine``, 0 = the plain soft-argmin above) then smooth
and sharpen that flow, as classical flow does (Lucas & Kanade 1981)::

    O <- box_w(O);  repeat refine times:  O <- box_w(O + LK(O))

``LK(O)`` is one Lucas-Kanade step: with ``W = warp(Y_{t-1}, O)`` and its central-difference
gradient ``g``, the displacement ``u`` that minimises ``box_w |W + g.u - Y_t|^2`` (a 2x2 linear
system per pixel, ridge ``LK_RIDGE``), each component clamped to one pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stae.model.warp import warp

# Sharpness of the soft-argmin, on costs normalised by their mean over the displacements.
# Chosen on the textures generator's validation split (docs/model.md#block-matching-option): observed
# end-point error 0.61 / 0.51 / 0.51 px at 10 / 20 / 30 for radius 3, window 9; 20 sits between.
TEMPERATURE = 20.0
_EPS = 1e-4  # keeps flat regions (all costs ~0) at uniform weights, i.e. zero flow
LK_RIDGE = 1e-4  # added to the 2x2 system's diagonal: flat regions take no Lucas-Kanade step


class BlockMatching(nn.Module):
    """(Y_{t-1}, Y_t), each (N, C, H, W) -> (N, 3, H / stride, W / stride): the observed backward
    flow (x, y) in feature-grid pixels and the confidence in [1 / (2r + 1)^2, 1]."""

    out_channels = 3

    def __init__(self, radius: int, window: int, stride: int, refine: int = 0) -> None:
        super().__init__()
        if radius < 1 or window < 1 or window % 2 != 1 or refine < 0:
            raise ValueError(f"block matching needs radius >= 1, an odd window and refine >= 0, "
                             f"got {radius}, {window}, {refine}")
        self.radius, self.window, self.stride, self.refine = radius, window, stride, refine
        offsets = [(dx, dy) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
        self.register_buffer("displacements", torch.tensor(offsets, dtype=torch.float32), persistent=False)

    def forward(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        r = self.radius
        p, c = prev.mean(1, keepdim=True), cur.mean(1, keepdim=True)
        h, w = c.shape[-2:]
        padded = F.pad(p, (r, r, r, r), mode="replicate")
        cost = torch.cat([(c - padded[..., r + dy:r + dy + h, r + dx:r + dx + w]).square()
                          for dy in range(-r, r + 1) for dx in range(-r, r + 1)], 1)  # (N, (2r+1)^2, H, W)
        cost = self._box(cost)
        weights = torch.softmax(cost * (-TEMPERATURE / (cost.mean(1, keepdim=True) + _EPS)), 1)
        flow = torch.einsum("nkhw,kc->nchw", weights, self.displacements.to(weights.dtype))
        if self.refine:
            flow = self._box(flow)
            for _ in range(self.refine):
                flow = self._box(flow + self._lucas_kanade(p, c, flow))
        out = torch.cat([flow / self.stride, weights.amax(1, keepdim=True)], 1)
        return F.avg_pool2d(out, self.stride) if self.stride > 1 else out

    def _box(self, x: torch.Tensor) -> torch.Tensor:
        """The w x w box mean as two 1-D means (the same divisor at the borders: rows x columns)."""
        k = self.window
        x = F.avg_pool2d(x, (k, 1), stride=1, padding=(k // 2, 0), count_include_pad=False)
        return F.avg_pool2d(x, (1, k), stride=1, padding=(0, k // 2), count_include_pad=False)

    def _lucas_kanade(self, prev: torch.Tensor, cur: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """The update u (N, 2, H, W) minimising box |warp(prev, flow) + grad . u - cur|^2, clamped to 1 px."""
        moved = warp(prev, flow, "border")
        px = F.pad(moved, (1, 1, 0, 0), mode="replicate")
        py = F.pad(moved, (0, 0, 1, 1), mode="replicate")
        gx, gy = (px[..., 2:] - px[..., :-2]) / 2, (py[..., 2:, :] - py[..., :-2, :]) / 2  # central differences
        e = cur - moved
        a, b, d = self._box(gx * gx) + LK_RIDGE, self._box(gx * gy), self._box(gy * gy) + LK_RIDGE
        u, v = self._box(gx * e), self._box(gy * e)
        det = a * d - b * b
        return torch.cat([(d * u - b * v) / det, (a * v - b * u) / det], 1).clamp(-1.0, 1.0)
