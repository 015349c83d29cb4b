"""Classical baselines users compare against: copy the last frame, and OpenCV DIS flow.

OpenCV is an optional extra (``pip install 'stae[baselines]'``); without it the DIS baselines
raise a clear error. All flows returned here use the model's *backward* convention
(``stae.model.warp``): ``target(p) ~ source(p + T(p))``, in image pixels, (B, 2, H, W).
"""

from __future__ import annotations

import numpy as np
import torch

from stae.data.frames import LUMA
from stae.errors import StaeError
from stae.metrics import BCE_EPS
from stae.model.warp import warp


def _cv2():
    try:
        import cv2
    except ImportError:
        raise StaeError("the DIS baselines need OpenCV: pip install 'stae[baselines]' "
                        "(opencv-python-headless)") from None
    return cv2


def _to_gray_u8(frame: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) uint8 grayscale."""
    f = frame.detach().float().cpu()
    if f.shape[0] == 3:
        f = LUMA[0] * f[0] + LUMA[1] * f[1] + LUMA[2] * f[2]
    else:
        f = f[0]
    return (f.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def dis_backward_flow(target: torch.Tensor, source: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """Backward flow T with target(p) ~ source(p + T(p)), by OpenCV DIS, for frames (B, C, H, W).

    DIS computes the forward flow of its first image into its second: calling it as
    (target, source) gives, for each target pixel, where it lies in the source -- which is
    exactly the backward flow of the model's convention.
    """
    cv2 = _cv2()
    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    dis = cv2.DISOpticalFlow_create(presets[preset])
    out = []
    for t, s in zip(target, source):
        f = dis.calc(_to_gray_u8(t), _to_gray_u8(s), None)  # (H, W, 2), x first
        out.append(torch.from_numpy(f).permute(2, 0, 1))
    return torch.stack(out).to(target.device, torch.float32)


def copy_last(context: torch.Tensor) -> torch.Tensor:
    """Predict the next frame as the last observed one: context (B, T, C, H, W) -> (B, C, H, W)."""
    return context[:, -1]


def dis_extrapolate(context: torch.Tensor, preset: str = "medium") -> tuple[torch.Tensor, torch.Tensor]:
    """Warp the last frame by DIS flow between the last two frames (constant-velocity guess).

    The backward flow from frame t to frame t-1 (where each pixel of t was one step ago) is the
    backward flow from t+1 to t under constant motion. Returns (prediction, flow), both at image
    resolution; context (B, T>=2, C, H, W).
    """
    if context.shape[1] < 2:
        raise StaeError("the DIS baseline needs at least two context frames")
    flow = dis_backward_flow(context[:, -1], context[:, -2], preset)
    return warp(context[:, -1].float(), flow).clamp(0, 1), flow


def constant_probability(frames: torch.Tensor) -> float:
    """Table 2's constant baseline: the single probability p* that minimises the mean per-pixel
    BCE over ``frames`` (any shape, values in [0, 1]) -- their mean pixel value, since
    d/dp [-(m log p + (1 - m) log(1 - p))] = 0 at p = m, the mean target."""
    if frames.numel() == 0:
        raise StaeError("constant_probability needs at least one pixel")
    return float(frames.detach().double().mean())


def constant_bce(p: float, target: torch.Tensor, eps: float = BCE_EPS) -> float:
    """Mean per-pixel BCE in nats of predicting probability ``p`` everywhere for ``target``
    (values in [0, 1]): -(m log p + (1 - m) log(1 - p)) with m the target mean (BCE is linear
    in the target). ``p`` is clamped to [eps, 1 - eps] as :func:`stae.metrics.bce` does."""
    if target.numel() == 0:
        raise StaeError("constant_bce needs at least one target pixel")
    p = min(max(float(p), eps), 1 - eps)
    m = float(target.detach().double().mean())
    return float(-(m * np.log(p) + (1 - m) * np.log1p(-p)))
