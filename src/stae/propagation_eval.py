"""Scoring label propagation on generated sequences with exact labels: the numbers of
docs/propagation.md and of the ``propagation`` stage of ``make reproduce``.

Protocol: the true labels of frame ``start`` of each sequence are carried ``k`` frames ahead,
one frame at a time, by each method (:data:`stae.propagate.METHODS`), and scored with the
region IoU of :func:`stae.metrics.iou` (mean over the labels other than 0) against the true
labels of frame ``start + k``; the figure is the mean over sequences (NaN where a sequence has
no labelled pixel on either map). Frames before ``start`` only warm the model's memory.
Sequences are processed in batches; every method sees the same frames.

Datasets, with one label per object: Moving MNIST (binary frames, a label per digit) and the
real-textures generator (grey, a label per foreground layer slot, 0 the background).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from stae.errors import StaeError
from stae.label_maps import labels_from_masks
from stae.propagate import Propagator, PropagationOptions

HORIZONS = (1, 5, 10)
DATASETS = ("moving_mnist", "textures")


def labelled_sequences(data: str, split: str, n: int, num_frames: int = 20,
                       first: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences ``first .. first + n - 1`` of the default ``split`` of ``data`` (its seed) with
    their true labels: (clips float (n, T, 1, 64, 64) in [0, 1], labels int64 (n, T, 64, 64))."""
    if data == "moving_mnist":
        from stae.data.moving_mnist import DEFAULT_SEEDS, MovingMNIST

        ds = MovingMNIST(first + n, DEFAULT_SEEDS[split], split=split, num_frames=num_frames, binary=True,
                         with_truth=True)
        items = ds.__getitems__(list(range(first, first + n)))
        return (torch.stack([it["clip"] for it in items]),
                torch.stack([labels_from_masks(it["masks"]) for it in items]))
    if data == "textures":
        from stae.data.textures import DEFAULT_SEEDS as TEXTURE_SEEDS, MovingTextures

        ds = MovingTextures(first + n, TEXTURE_SEEDS[split], split=split, with_truth=True, num_frames=num_frames)
        items = ds.__getitems__(list(range(first, first + n)))
        return (torch.stack([it["clip"] for it in items]),
                torch.stack([labels_from_masks(it["masks"][:, 1:]) for it in items]))  # slot k -> label k
    raise StaeError(f"data must be one of {', '.join(DATASETS)}, got {data!r}")


@torch.no_grad()
def propagation_iou(model, clips: torch.Tensor, labels: torch.Tensor, methods: Sequence[str],
                    options: PropagationOptions = PropagationOptions(), start: int = 0,
                    horizons: Sequence[int] = HORIZONS, batch: int = 25) -> dict[str, dict[str, Optional[float]]]:
    """{method: {str(k): mean IoU at k frames ahead}} over the sequences (module doc)."""
    from stae.metrics import iou

    if start + max(horizons) >= clips.shape[1]:
        raise StaeError(f"sequences of {clips.shape[1]} frames cannot score {max(horizons)} frames after frame {start}")
    scores: dict[str, dict[int, list[float]]] = {m: {k: [] for k in horizons} for m in methods}
    for b in range(0, len(clips), batch):
        c, lab = clips[b:b + batch], labels[b:b + batch]
        carrier = Propagator(model, lab[:, start], methods, options)
        for t in range(start):
            carrier.warm(c[:, t])
        carrier.first(c[:, start])
        for k in range(1, max(horizons) + 1):
            out = carrier.next(c[:, start + k])
            if k in horizons:
                for m in methods:
                    scores[m][k] += [iou(p, q) for p, q in zip(out[m], lab[:, start + k])]
    return {m: {str(k): _mean(v) for k, v in d.items()} for m, d in scores.items()}


def _mean(values: list[float]) -> Optional[float]:
    a = np.asarray(values, dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else None
