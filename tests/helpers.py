"""What the tests share: one tiny model config (same structure as the paper's, small enough for
float64 checks in milliseconds), a tiny run config and a tiny clip file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from stae.model import build_model
from stae.model.autoencoder import SpatioTemporalAutoencoder
from stae.training.run_dir import RESULT_NAME
from stae.weights import save_model
from stae.model.config import ModelConfig

# One CPD block of 4 filters, a 4-filter ConvLSTM, 3x3 kernels everywhere.
TINY_MODEL = {"encoder_channels": [4], "memory_channels": [4], "flow_kernel": 3, "spatial_kernel": 3, "memory_kernel": 3}


def tiny_model(**kw):
    """A freshly initialised (seed 0) model of :data:`TINY_MODEL`, with ``kw`` over it."""
    torch.manual_seed(0)
    return build_model(tiny_config(**kw))


class ListDataset(torch.utils.data.Dataset):
    """A dataset of ready-made items (dicts with "clip" and optional truth)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def moving_square(n=3, t=6, size=16, dx=1, binary=True):
    """A 4x4 square moving dx pixels right per frame, with exact backward flow and masks."""
    items = []
    for i in range(n):
        clip = torch.zeros(t, 1, size, size)
        masks = torch.zeros(t, 1, size, size, dtype=torch.bool)
        flow = torch.zeros(t - 1, 2, size, size)
        for k in range(t):
            c = 2 + i + dx * k
            clip[k, 0, 5:9, c:c + 4] = 1
            masks[k, 0, 5:9, c:c + 4] = True
            if k:
                flow[k - 1, 0, 5:9, c:c + 4] = -dx  # backward: frame k(p) = frame k-1(p + T(p))
        items.append({"clip": clip if binary else clip * 0.8, "masks": masks, "flow": flow})
    return ListDataset(items)


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


# ---------------------------------------------------------------- scripts/reproduce.py, as a script
ROOT = Path(__file__).resolve().parents[1]


def reproduce(*args) -> subprocess.CompletedProcess:
    """``python scripts/reproduce.py ARGS`` from the repository root, one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def quick(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    """--quick without training, results in TMP/results and runs in TMP/runs; must succeed."""
    r = reproduce("--quick", "--no-train", "--out", tmp_path / "results", "--runs", tmp_path / "runs", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def fake_run(runs: Path, name: str, output: str = "sigmoid", steps: int = 4) -> Path:
    run = runs / name
    model = SpatioTemporalAutoencoder(tiny_config(output=output))
    save_model(run / f"step-{steps:07d}" / "model.safetensors", model)
    recs = [{"kind": "train", "step": s, "bce": 0.7 - 0.01 * s, "loss": 0.7 - 0.01 * s, "time": float(s)}
            for s in range(1, steps + 1)]
    recs += [{"kind": "val", "step": 2, "total": 0.5}, {"kind": "val", "step": steps, "total": 0.6}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    summary = {"preset": "conv-1enc-1lstm", "recipe": "fast", "optimizer": "adamw", "lr": 2e-3, "schedule": "onecycle",
               "batch_size": 2, "loss": "bce", "loss_steps": "all", "updates": steps, "sequences_seen": 2 * steps,
               "clip_frames": 11, "minutes": 0.1, "stopped": "done", "threads": 1, "max_minutes": 5.0}
    (run / RESULT_NAME).write_text(json.dumps(summary))
    return run


def encode_video(path: Path, frames, codec: str, pix_fmt: str, rate: int) -> Path:
    """Write uint8 frames (H, W) for "gray" or (H, W, 3) RGB otherwise to ``path`` with PyAV."""
    import av

    frames = list(frames)
    c = av.open(str(path), "w")
    s = c.add_stream(codec, rate=rate)
    s.height, s.width = frames[0].shape[:2]
    s.pix_fmt = pix_fmt
    fmt = "gray" if frames[0].ndim == 2 else "rgb24"
    for frame in frames:
        for p in s.encode(av.VideoFrame.from_ndarray(frame, format=fmt)):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path
