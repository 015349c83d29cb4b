"""Grid generator GG and bilinear sampler S (paper Sec. 3.2.3, eq. 4): the one place that
calls ``grid_sample`` and owns the flow conventions.

Conventions (docs/architecture.md):

* A flow is ``(B, 2, h, w)`` in pixels of the grid it lives on; channel 0 is x (width),
  channel 1 is y (height).
* The model's flow ``T`` is *backward*: ``out(p) = in(p + T(p))`` (eq. 4). The forward flow of
  OpenCV, RAFT and ``.flo`` files (where a pixel of the current frame goes) is approximately
  ``-T``; :func:`backward_to_forward` is that conversion, named so that every caller says it.
* ``align_corners=True`` with the ``2*x/(W-1) - 1`` normalisation, so a flow of exactly ``k``
  pixels shifts by exactly ``k`` pixels. Samples from outside the input are zero, as in the
  released code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stae.model.cache import shape_cache

@shape_cache(maxsize=64)
def _base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, 2, h, w) pixel coordinates: channel 0 = x index, channel 1 = y index; a constant of
    the shape, so it is built once per (h, w, device, dtype), not on every time step."""
    ys = torch.arange(h, device=device, dtype=dtype)
    xs = torch.arange(w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy)).unsqueeze(0)


def warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Backward-warp ``x`` (B, C, h, w) by ``flow`` (B, 2, h, w) in pixels: out(p) = x(p + flow(p)).

    Differentiable w.r.t. both ``x`` and ``flow`` (bilinear interpolation, eq. 4).
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"warp expects x (B, C, h, w) and flow (B, 2, h, w); got {tuple(x.shape)} and {tuple(flow.shape)}")
    if x.shape[0] != flow.shape[0] or x.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"warp: x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or size")
    b, _, h, w = x.shape
    pos = _base_grid(h, w, flow.device, flow.dtype) + flow  # (B, 2, h, w) source pixels
    # Pixels -> [-1, 1] with align_corners=True: -1 is the centre of pixel 0, +1 of pixel n-1.
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=flow.device, dtype=flow.dtype)
    grid = (pos * scale.view(1, 2, 1, 1) - 1.0).permute(0, 2, 3, 1)  # (B, h, w, 2) as (x, y)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=True)


def backward_to_forward(flow: torch.Tensor) -> torch.Tensor:
    """The model's backward flow T (out(p) = in(p + T(p))) as the field's forward flow (~ -T).

    Exact for a constant flow; for a varying one it is the first-order approximation, which is
    how DIS/RAFT-style forward flow is compared with the model throughout this package.
    """
    return -flow


def upsample_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    """Flow on a feature grid (B, 2, h, w) -> flow on the image grid (B, 2, h*factor, w*factor).

    A displacement of ``d`` feature pixels is ``d * factor`` image pixels; values are bilinearly
    interpolated between feature-pixel centres.
    """
    if factor == 1:
        return flow
    up = F.interpolate(flow, scale_factor=factor, mode="bilinear", align_corners=False)
    return up * factor
