"""What the tests share: one tiny model config (same structure as the paper's, small enough for
float64 checks in milliseconds), a tiny run config and a tiny clip file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stae.model.config import ModelConfig

# One CPD block of 4 filters, a 4-filter ConvLSTM, 3x3 kernels everywhere.
TINY_MODEL = {"encoder_channels": [4], "memory_channels": [4], "flow_kernel": 3, "spatial_kernel": 3, "memory_kernel": 3}


def tiny_config(**kw) -> ModelConfig:
    """:data:`TINY_MODEL` as a ModelConfig, with ``kw`` over it."""
    base = {k: tuple(v) if isinstance(v, list) else v for k, v in TINY_MODEL.items()}
    return ModelConfig(**{**base, **kw})


def write_tiny_clips(path: Path, n: int = 24, t: int = 6, size: int = 16, seed: int = 0) -> Path:
    """n clips (N, T, 1, H, W) of a 4x4 square moving by at most a pixel per frame."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, t, 1, size, size), np.float32)
    for i in range(n):
        r, c = rng.integers(2, size - 6, 2)
        dr, dc = rng.integers(-1, 2, 2)
        for k in range(t):
            rr, cc = (r + dr * k) % (size - 4), (c + dc * k) % (size - 4)
            x[i, k, 0, rr:rr + 4, cc:cc + 4] = 1
    np.save(path, x)
    return path


def tiny_raw(data_path: Path, **sections) -> dict:
    """A nested config dict for a tiny, fast run on ``data_path``."""
    raw = {
        "model": dict(TINY_MODEL),
        "data": {"source": "file", "path": str(data_path), "context": 4, "val_fraction": 0.25},
        "train": {"max_steps": 12, "batch_size": 2, "seed": 3, "threads": 1},
        "checkpoint": {"every_steps": 4, "keep_last": 2},
        "log": {"every_steps": 1, "image_every": 0, "tensorboard": False, "progress": False},
    }
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return raw
