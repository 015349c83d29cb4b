"""Carrying labels along a backward flow: one propagation step, hard or soft, with or without
occlusion handling. The rule is that of eq. (4) applied to labels,

    labels_{t+1}(p) = labels_t(p + T(p)),   T the backward flow from frame t+1 to frame t,

and this module owns how integer labels are sampled at the non-integer points ``p + T(p)``:

* **hard** (:func:`warp_labels`): the one-hot channels of the labels present are warped with
  :func:`stae.model.warp.warp` (the four neighbours of ``p + T(p)`` vote with their bilinear
  weights) and the largest vote wins (ties go to the smaller label); the one-hot maps are
  rebuilt from that argmax at every step. A pixel whose source lies outside the frame gets no
  vote and becomes 0 (background).
* **soft** (:func:`warp_probabilities`): per-class probabilities (B, K, H, W) are warped and
  renormalised at every step and only turned into labels (argmax) for output and scoring, so a
  pixel that straddles two labels keeps both instead of being rounded at every step. A pixel
  whose source lies wholly outside the frame becomes background (label 0, class index 0).
* **occlusion** (:func:`forward_backward_occlusion`, :func:`guided_fill`): a pixel of frame
  t+1 that was not visible in frame t has no source to take a label from; warping would drag
  the label of whatever covered that spot (typically the occluder that just moved off it). The
  forward-backward check flags such pixels; their probabilities are then filled in from
  unflagged neighbours that look alike in frame t+1 (a few 3x3 passes weighted by colour
  similarity), not copied from the occluder.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from stae.model.warp import warp

LABEL_CHUNK = 16  # channels warped at once by warp_labels: bounds memory for many labels
FB_ALPHA1, FB_ALPHA2 = 0.01, 0.5  # forward-backward thresholds of Sundaram et al. (2010), UnFlow (2018)


def warp_labels(labels: torch.Tensor, flow: torch.Tensor, chunk: int = LABEL_CHUNK) -> torch.Tensor:
    """One hard step: ``out(p) = labels(p + flow(p))`` for an integer map (H, W) and a backward
    flow (2, H, W) in image pixels, by bilinear one-hot vote and argmax (module doc).

    Only the labels present are warped, ``chunk`` at a time, so the cost does not depend on
    how large the label values are. Returns int64 (H, W).
    """
    if labels.dim() != 2 or flow.shape != (2, *labels.shape):
        raise ValueError(f"warp_labels expects labels (H, W) and flow (2, H, W); got {tuple(labels.shape)} "
                         f"and {tuple(flow.shape)}")
    values = torch.unique(labels)  # sorted: argmax ties go to the smaller label
    f = flow.unsqueeze(0).float()
    best = torch.zeros(labels.shape, dtype=torch.float32)
    out = torch.zeros(labels.shape, dtype=torch.int64)
    for i in range(0, len(values), chunk):
        vals = values[i:i + chunk]
        onehot = (labels.unsqueeze(0) == vals.view(-1, 1, 1)).float().unsqueeze(0)  # (1, k, H, W)
        vote = warp(onehot, f)[0]  # (k, H, W)
        v, j = vote.max(0)
        better = v > best  # strictly: an earlier (smaller) label keeps a tie
        best = torch.where(better, v, best)
        out = torch.where(better, vals[j], out)
    return out  # no vote at all (source outside the frame) -> 0


def normalised(probs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Probabilities (B, K, H, W) rescaled to sum to 1 per pixel; a pixel with no mass at all
    becomes background (class index 0)."""
    total = probs.sum(1, keepdim=True)
    background = torch.zeros_like(probs[:1])
    background[:, 0] = 1.0
    return torch.where(total > eps, probs / total.clamp_min(eps), background)


def warp_probabilities(probs: torch.Tensor, flow: torch.Tensor, occluded: Optional[torch.Tensor] = None,
                       frame: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One soft step: class probabilities (B, K, H, W) carried by a backward flow (B, 2, H, W),
    renormalised. With ``occluded`` (B, 1, H, W) bool, the pixels of the new frame that were
    not visible before are filled from alike-looking neighbours in ``frame`` (B, C, H, W), the
    new frame (:func:`guided_fill`)."""
    out = warp(probs, flow.to(probs.dtype))
    if occluded is not None:
        if frame is None:
            raise ValueError("occlusion filling needs the frame the labels are carried to")
        out = guided_fill(out, occluded, frame)
    return normalised(out)


def forward_backward_occlusion(backward: torch.Tensor, forward: torch.Tensor,
                               alpha1: float = FB_ALPHA1, alpha2: float = FB_ALPHA2) -> torch.Tensor:
    """Pixels of frame t+1 that frame t does not show, bool (B, 1, H, W): where the backward
    flow (t+1 -> t) and the forward flow (t -> t+1) read at the backward flow's source do not
    cancel, ``|b + f(p + b)|^2 > alpha1 (|b|^2 + |f(p + b)|^2) + alpha2``."""
    f_at_source = warp(forward, backward, padding_mode="border")
    mismatch = (backward + f_at_source).pow(2).sum(1, keepdim=True)
    scale = backward.pow(2).sum(1, keepdim=True) + f_at_source.pow(2).sum(1, keepdim=True)
    return mismatch > alpha1 * scale + alpha2


def guided_fill(probs: torch.Tensor, holes: torch.Tensor, frame: torch.Tensor, passes: int = 10,
                sigma: float = 0.1) -> torch.Tensor:
    """Fill the ``holes`` (B, 1, H, W) bool of probability maps (B, K, H, W) from their 3x3
    neighbours outside the holes, each weighted by ``exp(-|frame(p) - frame(q)|^2 / 2 sigma^2)``
    (colour similarity in ``frame`` (B, C, H, W), values in [0, 1]); a pass fills the hole
    pixels that touch filled ones, ``passes`` times. Hole pixels still unreached keep ``probs``."""
    known = (~holes).to(probs.dtype)
    out = probs * known
    h, w = probs.shape[-2:]
    img = F.pad(frame.to(probs.dtype), (1, 1, 1, 1), mode="replicate")
    for _ in range(passes):
        if bool(known.all()):
            break
        p = F.pad(out, (1, 1, 1, 1))
        k = F.pad(known, (1, 1, 1, 1))
        num = torch.zeros_like(out)
        den = torch.zeros_like(known)
        for dy in range(3):
            for dx in range(3):
                diff = img[..., dy:dy + h, dx:dx + w] - img[..., 1:1 + h, 1:1 + w]
                a = torch.exp(-diff.pow(2).sum(1, keepdim=True) / (2 * sigma ** 2)) * k[..., dy:dy + h, dx:dx + w]
                num += a * p[..., dy:dy + h, dx:dx + w]
                den += a
        fill = (known == 0) & (den > 1e-6)
        out = torch.where(fill, num / den.clamp_min(1e-12), out)
        known = torch.where(fill, torch.ones_like(known), known)
    return torch.where(known > 0, out, probs)
