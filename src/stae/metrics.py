"""Evaluation metrics: small pure tensor functions. Frames are in [0, 1].

Per-pixel metrics return the mean over every element given; the OpenSTL-style ``*_per_frame``
sums over the pixels of a frame and averages over frames (OpenSTL's Moving MNIST protocol).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from stae.losses import image_gradient

BCE_EPS = 1e-7  # probabilities are clamped to [eps, 1 - eps]: a wrong 0/1 guess costs ~16.1 nats


def bce(prob: torch.Tensor, target: torch.Tensor, eps: float = BCE_EPS) -> float:
    """Per-pixel binary cross-entropy in nats (Table 2's metric) of probabilities ``prob``."""
    p = prob.double().clamp(eps, 1 - eps)
    t = target.double()
    return float(-(t * p.log() + (1 - t) * (1 - p).log()).mean())


def l2(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Per-pixel squared error (Table 3's metric)."""
    return float((pred.double() - target.double()).pow(2).mean())


def gradient_l2(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Per-pixel squared error of the [-1, 0, 1] image gradients."""
    return float((image_gradient(pred.double()) - image_gradient(target.double())).pow(2).mean())


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over frames of 10 log10(1 / MSE_frame) in dB; frames (..., C, H, W)."""
    mse = (pred.double() - target.double()).pow(2).flatten(-3).mean(-1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, valid
    region), per channel, averaged over frames; frames (..., C, H, W)."""
    x = pred.double().reshape(-1, 1, *pred.shape[-2:])
    y = target.double().reshape(-1, 1, *target.shape[-2:])
    w = _gaussian_window().to(x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mx**2
    syy = F.conv2d(y * y, w) - my**2
    sxy = F.conv2d(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def mse_per_frame(pred: torch.Tensor, target: torch.Tensor) -> float:
    """OpenSTL MSE: squared error summed over a frame's pixels, averaged over frames."""
    return float((pred.double() - target.double()).pow(2).flatten(-3).sum(-1).mean())


def mae_per_frame(pred: torch.Tensor, target: torch.Tensor) -> float:
    """OpenSTL MAE: absolute error summed over a frame's pixels, averaged over frames."""
    return float((pred.double() - target.double()).abs().flatten(-3).sum(-1).mean())


def epe(flow: torch.Tensor, true_flow: torch.Tensor, mask: Optional[torch.Tensor] = None) -> float:
    """End-point error: mean Euclidean distance between flows (..., 2, H, W), over ``mask``
    pixels (..., H, W) when given. Both flows must use the same convention and grid."""
    d = (flow.double() - true_flow.double()).pow(2).sum(-3).sqrt()
    if mask is not None:
        m = mask.bool()
        return float(d[m].mean()) if m.any() else math.nan
    return float(d.mean())


def iou(pred_labels: torch.Tensor, true_labels: torch.Tensor, num_classes: Optional[int] = None,
        ignore_background: bool = True) -> float:
    """Mean over classes of the region IoU (Jaccard J) of integer label maps (..., H, W).

    Classes absent from both maps are skipped; label 0 is background and skipped by default.
    """
    n = int(max(pred_labels.max(), true_labels.max())) + 1 if num_classes is None else num_classes
    scores = []
    for c in range(1 if ignore_background else 0, n):
        p, t = pred_labels == c, true_labels == c
        union = (p | t).sum()
        if union:
            scores.append(float((p & t).sum()) / float(union))
    return sum(scores) / len(scores) if scores else math.nan
