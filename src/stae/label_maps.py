"""Integer label maps: reading and writing them as PNG, their colours, overlays on frames, and
per-class probability maps (the soft labels that :mod:`stae.propagate` carries along a flow).

A label map is int64 (H, W), 0 = background; any values up to 65535, at most ``MAX_LABELS``
distinct ones per map (the classes propagated).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import torch

from stae.errors import StaeError

MAX_LABELS = 256  # distinct labels in one map: the VOC / DAVIS palette's size


def read_label_png(path: Union[str, os.PathLike]) -> torch.Tensor:
    """A PNG of integer labels -> int64 (H, W).

    Accepted: 8-bit gray ("L"), palette ("P": the palette *indices* are the labels, as in
    DAVIS annotations), 1-bit, and 16/32-bit integer images. An RGB(A) picture is refused:
    its colours are not labels.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV", "F"):
                raise StaeError(f"{p}: a label map must be a single-channel integer PNG (gray, palette or 16-bit), "
                                f"not {mode}")
            a = np.asarray(im.convert("L") if mode == "1" else im)
    except UnidentifiedImageError:
        raise StaeError(f"{p}: not an image file") from None
    if a.ndim != 2:
        raise StaeError(f"{p}: a label map must be a single-channel image, got shape {a.shape}")
    if (a < 0).any():
        raise StaeError(f"{p}: negative labels")
    return torch.from_numpy(a.astype(np.int64))


def label_colors(n: int) -> np.ndarray:
    """(n, 3) uint8: the PASCAL VOC / DAVIS colour map (0 black, 1 dark red, 2 dark green, ...),
    which repeats its 256 colours for larger labels."""
    idx = np.arange(n) % 256
    cmap = np.zeros((n, 3), np.int64)
    lab = idx.copy()
    for shift in range(7, -1, -1):
        for c in range(3):
            cmap[:, c] |= ((lab >> c) & 1) << shift
        lab >>= 3
    return cmap.astype(np.uint8)


def write_label_png(path: Union[str, os.PathLike], labels: torch.Tensor) -> None:
    """Write an integer label map (H, W) as PNG: palette ("P", indices = labels, VOC colours)
    when all labels are < 256, else 16-bit gray. Reading it back with :func:`read_label_png`
    (or PIL: ``np.asarray(Image.open(path))``) gives the same integers."""
    from PIL import Image

    a = labels.detach().cpu().numpy()
    if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
        raise StaeError(f"{path}: labels must be in 0..65535 to be stored as PNG")
    if a.max(initial=0) < 256:
        im = Image.fromarray(a.astype(np.uint8), mode="P")
        im.putpalette(label_colors(256).reshape(-1).tolist())
    else:
        im = Image.fromarray(a.astype(np.uint16))
    im.save(path, format="PNG")


def overlay(frame: torch.Tensor, labels: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """Frame (C, H, W) in [0, 1] with the labels' VOC colours blended in (label 0 left clear)
    -> (H, W, 3) uint8."""
    from stae.viz import to_rgb_uint8

    img = to_rgb_uint8(frame).astype(np.float32)
    lab = labels.cpu().numpy()
    colors = label_colors(int(lab.max(initial=0)) + 1).astype(np.float32)
    fg = lab > 0
    img[fg] = (1 - alpha) * img[fg] + alpha * colors[lab[fg]]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def labels_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Moving MNIST masks bool (T, K, H, W) (a partition of the digit pixels) -> labels int64
    (T, H, W): 0 background, k + 1 for digit k."""
    k = torch.arange(1, masks.shape[1] + 1, dtype=torch.int64).view(1, -1, 1, 1)
    return (masks.to(torch.int64) * k).sum(1)


def label_values(labels: torch.Tensor, name: str = "label map") -> torch.Tensor:
    """The sorted distinct values of integer label maps (..., H, W) (always including 0, the
    background); StaeError if there are more than ``MAX_LABELS``."""
    values = torch.unique(torch.cat([labels.reshape(-1), labels.new_zeros(1)]))
    if len(values) > MAX_LABELS:
        raise StaeError(f"{name}: {len(values)} distinct labels, more than the {MAX_LABELS} a label map may hold")
    return values


def to_probabilities(labels: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Integer maps (B, H, W) -> one-hot class probabilities float32 (B, K, H, W) over ``values``
    (K sorted label values; every label of ``labels`` must be among them)."""
    return (labels.unsqueeze(1) == values.view(1, -1, 1, 1)).float()


def from_probabilities(probs: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Class probabilities (B, K, H, W) -> integer maps (B, H, W): the most probable label
    (ties go to the smaller label)."""
    return values[probs.argmax(1)]
