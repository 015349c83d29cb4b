"""Evaluation metrics: small pure tensor functions. Frames are in [0, 1].

Per-pixel metrics return the mean over every element given; the OpenSTL-style ``*_per_frame``
sums over the pixels of a frame and averages over frames (OpenSTL's Moving MNIST protocol).
:func:`ssim` is stae's own (Gaussian window); the benchmarks' definitions are
:func:`openstl_ssim`, :func:`openstl_psnr` and :func:`vpn_nats_per_frame`. Every formula is
written out in docs/metrics.md.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from stae.errors import StaeError
from stae.losses import image_gradient

BCE_EPS = 1e-7  # probabilities are clamped to [eps, 1 - eps]: a wrong 0/1 guess costs ~16.1 nats


def _nats(prob: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Elementwise binary cross-entropy in nats (float64) of probabilities ``prob`` (clamped to
    [eps, 1 - eps]) against targets in [0, 1]."""
    p = prob.double().clamp(eps, 1 - eps)
    t = target.double()
    return -(t * p.log() + (1 - t) * (1 - p).log())


def bce(prob: torch.Tensor, target: torch.Tensor, eps: float = BCE_EPS) -> float:
    """Per-pixel binary cross-entropy in nats (Table 2's metric) of probabilities ``prob``."""
    return float(_nats(prob, target, eps).mean())


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
    """stae's Gaussian SSIM: mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1
    0.01, K2 0.03, population covariance, valid region), per channel, averaged over frames;
    frames (..., C, H, W). Not OpenSTL's SSIM (that is :func:`openstl_ssim`)."""
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


# --- The benchmarks' own definitions (docs/metrics.md) --------------------------------------
# OpenSTL (openstl/core/metrics.py) clips predictions to [0, 1] for SSIM and PSNR only, then
# scores each frame of each clip and averages the per-frame values.
OPENSTL_SSIM_WINDOW = 7  # scikit-image's default uniform window
OPENSTL_SSIM_DATA_RANGE = 2.0  # scikit-image <= 0.19 for float images: dtype range -1..1


def _frames(x: torch.Tensor, what: str) -> torch.Tensor:
    """(..., C, H, W) -> (frames, C, H, W) in float64."""
    if x.dim() < 3:
        raise StaeError(f"{what}: expected frames (..., C, H, W), got shape {tuple(x.shape)}")
    return x.double().reshape(-1, *x.shape[-3:])


def openstl_ssim_per_frame(pred: torch.Tensor, target: torch.Tensor, win_size: int = OPENSTL_SSIM_WINDOW,
                           data_range: float = OPENSTL_SSIM_DATA_RANGE) -> torch.Tensor:
    """OpenSTL's SSIM of each frame (..., C, H, W) -> (frames,) float64.

    scikit-image's ``structural_similarity`` with its defaults: a ``win_size`` x ``win_size``
    uniform window, sample covariance (N / (N - 1), N = win_size**2), K1 = 0.01, K2 = 0.03,
    C1 = (K1 R)^2, C2 = (K2 R)^2 with R = ``data_range`` (2: the pinned scikit-image's guess for
    float images). The SSIM map is averaged over the pixels whose window lies inside the frame
    (skimage filters the whole frame, then crops ``(win_size - 1) // 2`` at each border: the same
    pixels), then over channels. ``pred`` is clipped to [0, 1] first; ``target`` is not.
    """
    if pred.shape != target.shape:
        raise StaeError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    x = _frames(pred, "pred").clamp(0, 1)
    y = _frames(target, "target")
    n, c, h, w = x.shape
    if win_size < 1 or win_size % 2 == 0 or h < win_size or w < win_size:
        raise StaeError(f"SSIM window {win_size} must be odd and fit the {h}x{w} frames")
    x, y = x.reshape(n * c, 1, h, w), y.reshape(n * c, 1, h, w)

    def mean(z: torch.Tensor) -> torch.Tensor:  # uniform window over the valid region
        return F.avg_pool2d(z, win_size, stride=1)

    np_ = win_size * win_size
    cov_norm = np_ / (np_ - 1)  # sample covariance
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(-2, -1)).reshape(n, c).mean(1)


def openstl_ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """OpenSTL's SSIM: :func:`openstl_ssim_per_frame` averaged over every frame of every clip."""
    return float(openstl_ssim_per_frame(pred, target).mean())


def openstl_psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """OpenSTL's PSNR in dB: per frame, ``-10 log10(MSE)`` with MSE the mean over the frame's
    channels and pixels of the squared error of ``pred`` clipped to [0, 1] (peak 1); then the
    mean over frames. A perfect frame scores +inf, and so then does the mean (as in OpenSTL)."""
    if pred.shape != target.shape:
        raise StaeError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    x, y = _frames(pred, "pred").clamp(0, 1), _frames(target, "target")
    mse = (x - y).pow(2).flatten(1).mean(1)
    per_frame = torch.where(mse > 0, -10 * torch.log10(mse.clamp_min(1e-300)), torch.full_like(mse, math.inf))
    return float(per_frame.mean())


def vpn_nats_per_frame(prob: torch.Tensor, target: torch.Tensor, eps: float = BCE_EPS) -> float:
    """Video Pixel Networks' Moving MNIST score: binary cross-entropy in nats (natural log)
    summed over a frame's channels and pixels, averaged over frames (and clips).

    Targets are the intensities in [0, 1] themselves: the expected score when each pixel is
    binarised stochastically, on with probability equal to its intensity (unchanged on binary
    frames). The true frames then score their own entropy, the "lower bound" of VPN's table
    (docs/metrics.md). ``prob`` is the predicted probability that a pixel is on (a sigmoid
    output), clamped to [eps, 1 - eps].
    """
    if prob.shape != target.shape:
        raise StaeError(f"prob {tuple(prob.shape)} and target {tuple(target.shape)} differ in shape")
    return float(_nats(_frames(prob, "prob"), _frames(target, "target"), eps).flatten(1).sum(1).mean())


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
