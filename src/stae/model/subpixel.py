"""Exact, faster equivalents of model building blocks (performance options, docs/performance.md).

:func:`upsample_conv2d`: the decoder's "nearest x2 upsampling, then k x k convolution" as one
convolution on the low-resolution map followed by a pixel shuffle (the sub-pixel form).
With nearest upsampling, output pixel (2y + a, 2x + b) only ever reads low-resolution pixels
y + floor((a + m - p) / 2), so each of the four output phases (a, b) is a small convolution
of the *un-upsampled* map with the k x k taps summed into K x K bins, K = 2 ceil(p / 2) + 1
(K = 5 for k = 7). Same function up to float rounding; about half the multiply-adds, no
upsampled (4x larger) activation to store for the backward pass, and 4 C_out output channels
instead of C_out (C_out = 1 for grayscale frames, a shape direct convolution handles badly).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["phase_kernels", "upsample_conv2d"]


def _phase_matrix(k: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """S[a, j, m] = 1 where tap m of phase a reads low-resolution offset j - r: (2, K, k)."""
    p = k // 2
    r = math.ceil(p / 2)
    s = torch.zeros(2, 2 * r + 1, k, dtype=dtype, device=device)
    for a in range(2):
        for m in range(k):
            s[a, (a + m - p) // 2 + r, m] = 1.0
    return s


def phase_kernels(weight: torch.Tensor, bias: Optional[torch.Tensor] = None
                  ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(C_out, C_in, k, k) kernel of conv-after-nearest-x2 -> (4 C_out, C_in, K, K) phase
    kernels in pixel-shuffle order (channel c * 4 + a * 2 + b) and the bias repeated 4 times."""
    k = weight.shape[-1]
    s = _phase_matrix(k, weight.dtype, weight.device)
    w4 = torch.einsum("aim,ocmn,bjn->oabcij", s, weight, s)  # (O, 2, 2, C, K, K)
    w4 = w4.reshape(4 * weight.shape[0], weight.shape[1], s.shape[1], s.shape[1])
    b4 = None if bias is None else bias.repeat_interleave(4)
    return w4, b4


def upsample_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``conv2d(upsample_nearest_x2(x), weight, bias, padding=k // 2)`` for odd k, computed as
    a convolution of x with the phase kernels and a pixel shuffle.
    x (N, C_in, h, w) -> (N, C_out, 2h, 2w)."""
    if weight.shape[-1] != weight.shape[-2] or weight.shape[-1] % 2 != 1:
        raise ValueError(f"upsample_conv2d needs a square odd kernel, got {tuple(weight.shape)}")
    w4, b4 = phase_kernels(weight, bias)
    if w4.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type):
        w4 = w4.to(x.dtype)
        b4 = None if b4 is None else b4.to(x.dtype)
    y = F.conv2d(x, w4, b4, padding=w4.shape[-1] // 2)
    return F.pixel_shuffle(y, 2)
