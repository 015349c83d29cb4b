"""A mixture of clip datasets by weight, deterministic per (seed, index): e.g. generated
textures (exact flow) with random crops of real video (real motion, no flow).

Item ``i`` comes from component ``c`` drawn from ``default_rng([seed, i])`` with probabilities
``weights`` (normalised), and is that component's item ``i % len(component)``. Items are
``{"clip": float32 (T, C, H, W)}`` only (the keys every component has), so the components must
agree on T, C, H and W; this is checked on their first items.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from stae.errors import StaeError


def _items(ds: Dataset, indices: list[int]) -> list[dict]:
    getitems = getattr(ds, "__getitems__", None)
    return getitems(indices) if getitems is not None else [ds[i] for i in indices]


class Mixture(Dataset):
    """``num_sequences`` clips drawn from ``datasets`` with probabilities ``weights``."""

    def __init__(self, datasets: Sequence[Dataset], weights: Sequence[float], num_sequences: int, seed: int):
        if len(datasets) == 0 or len(datasets) != len(weights):
            raise StaeError(f"a mixture needs one weight per dataset, got {len(datasets)} datasets and {len(weights)} weights")
        w = np.asarray(weights, np.float64)
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise StaeError(f"mixture weights must be >= 0 with a positive sum, got {list(weights)}")
        if num_sequences < 0:
            raise StaeError(f"num_sequences must be >= 0, got {num_sequences}")
        self.datasets = [d for d, x in zip(datasets, w) if x > 0]
        self.cumulative = np.cumsum(w[w > 0]) / w.sum()
        self.num_sequences, self.seed = int(num_sequences), int(seed)
        shapes = []
        for d in self.datasets:
            if len(d) == 0:
                raise StaeError("a mixture component with a positive weight is empty")
            shapes.append(tuple(_items(d, [0])[0]["clip"].shape))
        if len(set(shapes)) > 1:
            raise StaeError(f"mixture components give clips of different shapes (T, C, H, W): {shapes}")

    def __len__(self) -> int:
        return self.num_sequences

    def component(self, i: int) -> int:
        """Which component item ``i`` comes from."""
        u = np.random.default_rng([self.seed, int(i)]).random()
        return min(int(np.searchsorted(self.cumulative, u, side="right")), len(self.datasets) - 1)

    def __getitems__(self, indices) -> list[dict[str, torch.Tensor]]:
        out: list = [None] * len(indices)
        groups: dict[int, list[int]] = {}
        checked = []
        for j, i in enumerate(indices):
            i = int(i) + (self.num_sequences if int(i) < 0 else 0)
            if not 0 <= i < self.num_sequences:
                raise IndexError(f"index {i} out of range for a mixture of {self.num_sequences} clips")
            checked.append(i)
            groups.setdefault(self.component(i), []).append(j)
        for c, js in groups.items():  # one (vectorised) call per component
            d = self.datasets[c]
            for j, item in zip(js, _items(d, [checked[j] % len(d) for j in js])):
                out[j] = {"clip": item["clip"]}
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]
