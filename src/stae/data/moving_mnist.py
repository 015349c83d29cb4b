"""Moving MNIST generator (Srivastava et al. 2015; the motion model of OpenSTL), with exact
ground truth: per-digit masks and the model's backward flow.

Motion model, per digit (as OpenSTL's ``get_random_trajectory``, vectorised):

* position ``(x, y)`` in [0, 1]^2 of the *free* canvas (``W - digit_w``, ``H - digit_h``),
  start uniform; direction ``theta`` uniform in [0, 2 pi); speed ``speed`` (fraction of the
  free canvas per frame, default 0.1, i.e. 3.6 px for 28x28 digits on 64x64; a ``(lo, hi)``
  pair draws it uniformly per digit);
* every frame, *including before the first one*: ``x += vx * speed``, ``y += vy * speed``; a
  coordinate that leaves [0, 1] is clamped to the edge and that velocity component flips
  (the bounce);
* the digit's top-left corner in frame ``t`` is ``int(free * position)`` (truncation): integer
  pixel positions, so the digits stay inside the canvas and the ground truth is exact;
* digits overlap by pixel-wise max; the optional ``lines`` (paper Sec. 4.1, "a pair of lines,
  one vertical and one horizontal, at random positions") are one full-width row and one
  full-height column of value 255 at uniform random positions, the same in every frame.

Determinism: sequence ``i`` of seed ``s`` is drawn from ``numpy.random.default_rng([s, i])``
alone, in a fixed order whatever the options (digit indices ``integers(0, N, K)``; start
``random((K, 2))`` as (x, y); direction ``random(K)``; speed ``random(K)``; lines
``random(2)`` as (row, column)). So a sequence is the same generated alone, in a batch, in a
DataLoader worker or read back from a saved file; and switching ``lines`` on adds the lines
without moving the digits.

Ground truth (``with_truth=True``), with ``K`` digits and ``T`` frames of ``H x W``:

* ``owner`` uint8 (T, H, W): 0 for background (and line pixels), ``k + 1`` where digit ``k``
  wins the pixel-wise max (ties go to the lower ``k``); only pixels that are non-zero in the
  output frame have an owner;
* ``masks`` bool (T, K, H, W): ``owner == k + 1``; they partition the digit pixels;
* ``flow`` float32 (T-1, 2, H, W): the model's *backward* flow in pixels (channel 0 = x):
  ``flow[t]`` lives on frame ``t+1`` and is ``position_t - position_{t+1}`` of the digit that
  owns the pixel (0 on background and lines), so
  ``frame[t+1](p) = frame[t](p + flow[t](p))`` for every digit pixel ``p`` of frame ``t+1``
  not occluded in either frame, which is what :func:`stae.model.warp.warp` consumes.
  It is exact at bounces too, since positions are integers.

Binary frames: ``pixel / 255 >= threshold`` (default 0.5) becomes 255, else 0.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import Dataset

from stae.data.digits import load_digits
from stae.errors import StaeError
from stae.machine import require_memory

# Sizes and seeds of the default datasets. Train/val sizes are the paper's (Sec. 4.1); the
# test set is ours. Training sequences use training digits; validation and test sequences use
# test digits (different seeds, so different sequences).
DEFAULT_SIZES = {"train": 10_000, "val": 3_000, "test": 2_000}
DEFAULT_SEEDS = {"train": 0, "val": 1, "test": 2}
DIGIT_SPLIT = {"train": "train", "val": "test", "test": "test"}
DEFAULT_SPEED = 0.1  # fraction of the free canvas per frame (OpenSTL's step_length)

# Sequences generated together; about 4 MB per layer keeps the working set in cache.
_CHUNK = 64


def _as_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def _speed_range(speed: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(speed, (int, float, np.floating, np.integer)):
        lo = hi = float(speed)
    else:
        lo, hi = (float(s) for s in speed)
    if not (0.0 <= lo <= hi) or not math.isfinite(hi):
        raise StaeError(f"speed must be >= 0 (or a range lo <= hi), got {speed!r}")
    return lo, hi


def _draw(seed: int, indices: np.ndarray, n_digits: int, k: int) -> dict[str, np.ndarray]:
    """Per-sequence random numbers from default_rng([seed, index]), in the documented order."""
    b = len(indices)
    ids = np.empty((b, k), np.int64)
    start = np.empty((b, k, 2))
    theta = np.empty((b, k))
    u_speed = np.empty((b, k))
    u_lines = np.empty((b, 2))
    for j, i in enumerate(indices):
        rng = np.random.default_rng([int(seed), int(i)])
        ids[j] = rng.integers(0, n_digits, k)
        start[j] = rng.random((k, 2))
        theta[j] = rng.random(k)
        u_speed[j] = rng.random(k)
        u_lines[j] = rng.random(2)
    return {"ids": ids, "start": start, "theta": theta * (2 * np.pi), "u_speed": u_speed, "u_lines": u_lines}


def trajectories(start: np.ndarray, theta: np.ndarray, step: np.ndarray, num_frames: int, free_hw: tuple[int, int]) -> np.ndarray:
    """Integer top-left positions (..., T, K, 2) as (x, y) from start (..., K, 2) in [0, 1],
    direction ``theta`` (..., K) and per-digit step (..., K) in free-canvas units.

    OpenSTL's loop: move, then clamp to [0, 1] and flip the velocity component at an edge.
    """
    x, y = start[..., 0].copy(), start[..., 1].copy()
    vx, vy = np.cos(theta), np.sin(theta)
    out = np.empty(start.shape[:-2] + (num_frames,) + start.shape[-2:], np.float64)
    for t in range(num_frames):
        x += vx * step
        y += vy * step
        for c, v in ((x, vx), (y, vy)):
            low, high = c <= 0.0, c >= 1.0
            c[low] = 0.0
            c[high] = 1.0
            v[low | high] *= -1.0
        out[..., t, :, 0] = x
        out[..., t, :, 1] = y
    free = np.array([free_hw[1], free_hw[0]], np.float64)  # (x, y) = (width, height)
    return (out * free).astype(np.int64)


def masks_from_owner(owner: np.ndarray, num_digits: int, out: np.ndarray | None = None) -> np.ndarray:
    """owner uint8 (..., H, W) -> masks bool (..., K, H, W) with masks[k] = (owner == k + 1)."""
    ks = np.arange(1, num_digits + 1, dtype=owner.dtype).reshape((num_digits, 1, 1))
    return np.equal(owner[..., None, :, :], ks, out=out)


def flow_from_owner(owner: np.ndarray, positions: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The backward flow (..., T-1, 2, H, W) float32 in pixels from the owner map (..., T, H, W)
    and the digits' top-left positions (..., T, K, 2) as (x, y).

    ``flow[t](p) = positions[t, k] - positions[t+1, k]`` where ``owner[t+1](p) = k + 1``;
    0 where ``owner[t+1](p) = 0``.
    """
    d = (positions[..., :-1, :, :] - positions[..., 1:, :, :]).astype(np.float32)  # (..., T-1, K, 2)
    own = owner[..., 1:, :, :]  # (..., T-1, H, W): flow[t] lives on frame t+1
    shape = own.shape[:-2] + (2,) + own.shape[-2:]
    flow = np.zeros(shape, np.float32) if out is None else out
    if out is not None:
        flow.fill(0.0)
    for k in range(d.shape[-2]):
        m = own == k + 1
        for c in range(2):
            np.copyto(flow[..., c, :, :], d[..., k, c][..., None, None], where=m)
    return flow


def _render_chunk(digits: np.ndarray, pos: np.ndarray, ids: np.ndarray, hw: tuple[int, int],
                  line_rc: np.ndarray | None, binary_level: int | None) -> tuple[np.ndarray, np.ndarray]:
    """frames uint8 (B, T, H, W) and owner uint8 (B, T, H, W) for positions (B, T, K, 2)."""
    b, t, k, _ = pos.shape
    h, w = hw
    dh, dw = digits.shape[1:]
    bt = np.arange(b * t)
    best = np.zeros((b * t, h, w), np.uint8)
    owner = np.zeros((b * t, h, w), np.uint8)
    layer = np.empty_like(best)
    for j in range(k):
        layer.fill(0)
        # Every (sequence, frame) pastes one digit: assign all 28x28 blocks at once through a
        # writeable sliding-window view of the canvas (one fancy-indexed copy, no Python loop).
        win = sliding_window_view(layer, (dh, dw), axis=(1, 2), writeable=True)
        win[bt, pos[:, :, j, 1].ravel(), pos[:, :, j, 0].ravel()] = np.repeat(digits[ids[:, j]], t, axis=0)
        if j == 0:
            best, layer = layer, best
            owner[best > 0] = 1
        else:
            np.copyto(owner, np.uint8(j + 1), where=layer > best)  # ties keep the lower index
            np.maximum(best, layer, out=best)
    best = best.reshape(b, t, h, w)
    owner = owner.reshape(b, t, h, w)
    if line_rc is not None:
        rows, cols = line_rc[:, 0], line_rc[:, 1]
        bi = np.arange(b)
        best[bi, :, rows, :] = 255
        best[bi, :, :, cols] = 255
        owner[bi, :, rows, :] = 0  # line pixels are 255, the maximum: the static line owns them
        owner[bi, :, :, cols] = 0
    if binary_level is not None:
        on = best >= binary_level
        best = on.astype(np.uint8) * np.uint8(255)
        owner[~on] = 0
    return best, owner


def generate(seed: int, indices, digits: np.ndarray | None = None, split: str = "train", num_digits: int = 2,
             num_frames: int = 20, size: int | tuple[int, int] = 64, speed: float | tuple[float, float] = DEFAULT_SPEED,
             lines: bool = False, binary: bool = False, threshold: float = 0.5, with_truth: bool = False) -> dict[str, np.ndarray]:
    """Generate the Moving MNIST sequences ``indices`` of ``seed`` as numpy arrays.

    ``digits``: uint8 (N, h, w) digit images; None loads :func:`stae.data.digits.load_digits`
    for ``split`` ('train' -> training digits, 'val'/'test' -> test digits).

    Returns, with B = len(indices):

    * ``frames`` uint8 (B, T, H, W) (binary: 0 or 255);
    * ``positions`` int16 (B, T, K, 2): each digit's top-left (x, y) per frame;
    * ``digit_ids`` int64 (B, K): rows of ``digits`` used;
    * ``lines`` int16 (B, 2): (row, column) of the two lines, or -1 without lines;
    * ``owner`` uint8 (B, T, H, W): 0 background/lines, k+1 for digit k;
    * with ``with_truth``: ``masks`` bool (B, T, K, H, W) and ``flow`` float32
      (B, T-1, 2, H, W), see the module docstring.
    """
    if split not in DIGIT_SPLIT:
        raise StaeError(f"split must be one of {sorted(DIGIT_SPLIT)}, got {split!r}")
    if digits is None:
        digits = load_digits(DIGIT_SPLIT[split])
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.dtype != np.uint8 or len(digits) == 0:
        raise StaeError(f"digits must be a non-empty uint8 array (N, h, w), got {digits.dtype} {digits.shape}")
    h, w = _as_hw(size)
    dh, dw = digits.shape[1:]
    if h < dh or w < dw:
        raise StaeError(f"canvas {h}x{w} is smaller than the {dh}x{dw} digits")
    if num_digits < 1 or num_frames < 1:
        raise StaeError(f"num_digits and num_frames must be >= 1, got {num_digits} and {num_frames}")
    if with_truth and num_frames < 2:
        raise StaeError("ground-truth flow needs num_frames >= 2")
    if binary and not 0.0 < threshold <= 1.0:
        raise StaeError(f"binary threshold must be in (0, 1], got {threshold}")
    lo, hi = _speed_range(speed)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if (indices < 0).any():
        raise StaeError("sequence indices must be >= 0")
    b = len(indices)
    per_sequence = num_frames * h * w * (3 + (num_digits + 8 if with_truth else 0))  # frames, owner, render; truth
    require_memory(max(b, 1) * per_sequence, f"Moving MNIST sequences of {num_frames} frames of {h}x{w}"
                   + (f" ({b} of them)" if b > 1 else ""))
    r = _draw(seed, indices, len(digits), num_digits)
    step = lo + (hi - lo) * r["u_speed"]
    pos = trajectories(r["start"], r["theta"], step, num_frames, (h - dh, w - dw))  # (B, T, K, 2)
    line_rc = None
    if lines:
        line_rc = np.stack([(r["u_lines"][:, 0] * h).astype(np.int64), (r["u_lines"][:, 1] * w).astype(np.int64)], axis=1)
    level = int(math.ceil(threshold * 255 - 1e-9)) if binary else None
    frames = np.empty((b, num_frames, h, w), np.uint8)
    owner = np.empty((b, num_frames, h, w), np.uint8)
    if with_truth:
        masks = np.empty((b, num_frames, num_digits, h, w), bool)
        flow = np.empty((b, num_frames - 1, 2, h, w), np.float32)
    for s in range(0, b, _CHUNK):
        e = min(b, s + _CHUNK)
        frames[s:e], owner[s:e] = _render_chunk(digits, pos[s:e], r["ids"][s:e], (h, w),
                                                None if line_rc is None else line_rc[s:e], level)
        if with_truth:  # per chunk, while the owner map is still in cache
            masks_from_owner(owner[s:e], num_digits, out=masks[s:e])
            flow_from_owner(owner[s:e], pos[s:e], out=flow[s:e])
    out = {
        "frames": frames,
        "positions": pos.astype(np.int16),
        "digit_ids": r["ids"],
        "lines": (line_rc if line_rc is not None else np.full((b, 2), -1)).astype(np.int16),
        "owner": owner,
    }
    if with_truth:
        out["masks"] = masks
        out["flow"] = flow
    return out


def sample_to_tensors(frames: np.ndarray, masks: np.ndarray | None = None, flow: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """One sequence as the dataset dict: "clip" float32 (T, 1, H, W) in [0, 1] (+ truth keys)."""
    out = {"clip": torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32) / 255.0).unsqueeze(1)}
    if masks is not None:
        out["masks"] = torch.from_numpy(np.ascontiguousarray(masks))
    if flow is not None:
        out["flow"] = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))
    return out


class MovingMNIST(Dataset):
    """Moving MNIST sequences generated on the fly, deterministic per (seed, index).

    ``ds[i]`` -> {"clip": float32 (T, 1, H, W) in [0, 1]} and, with ``with_truth``,
    "masks": bool (T, K, H, W) and "flow": float32 (T-1, 2, H, W) (backward flow, pixels).
    ``digits``: a uint8 array (N, h, w), a directory of MNIST IDX files, or None for the
    embedded digits of ``split`` ('train' uses training digits, 'val'/'test' test digits).
    A DataLoader fetches a whole batch with one vectorised call (``__getitems__``).
    """

    def __init__(self, num_sequences: int, seed: int, split: str = "train", num_digits: int = 2, num_frames: int = 20,
                 size: int | tuple[int, int] = 64, speed: float | tuple[float, float] = DEFAULT_SPEED, lines: bool = False,
                 binary: bool = False, threshold: float = 0.5, with_truth: bool = False,
                 digits: np.ndarray | str | os.PathLike | None = None):
        if split not in DIGIT_SPLIT:
            raise StaeError(f"split must be one of {sorted(DIGIT_SPLIT)}, got {split!r}")
        if num_sequences < 0:
            raise StaeError(f"num_sequences must be >= 0, got {num_sequences}")
        if digits is None or isinstance(digits, (str, os.PathLike)):
            digits = load_digits(DIGIT_SPLIT[split], source=digits)
        self.num_sequences = int(num_sequences)
        self.seed = int(seed)
        self.split = split
        self.digits = np.asarray(digits)
        self.options: dict[str, Any] = dict(num_digits=num_digits, num_frames=num_frames, size=size, speed=speed,
                                            lines=lines, binary=binary, threshold=threshold, with_truth=with_truth)
        # Validate the options once, here, rather than in a DataLoader worker.
        generate(self.seed, [], digits=self.digits, split=split, **self.options)

    def __len__(self) -> int:
        return self.num_sequences

    def _check(self, i: int) -> int:
        if i < 0:
            i += self.num_sequences
        if not 0 <= i < self.num_sequences:
            raise IndexError(f"sequence index {i} out of range for {self.num_sequences} sequences")
        return i

    def generate(self, indices) -> dict[str, np.ndarray]:
        """The numpy batch for ``indices`` (see :func:`generate`)."""
        return generate(self.seed, [self._check(int(i)) for i in indices], digits=self.digits, split=self.split, **self.options)

    def __getitems__(self, indices) -> list[dict[str, torch.Tensor]]:
        g = self.generate(indices)
        truth = self.options["with_truth"]
        return [sample_to_tensors(g["frames"][j], g["masks"][j] if truth else None, g["flow"][j] if truth else None)
                for j in range(len(indices))]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]


def default_dataset(split: str = "train", **kw) -> MovingMNIST:
    """The default dataset of ``split``: 10,000 train / 3,000 val / 2,000 test sequences with
    seeds 0 / 1 / 2 (``num_sequences`` and ``seed`` may be overridden in ``kw``)."""
    if split not in DEFAULT_SIZES:
        raise StaeError(f"split must be one of {sorted(DEFAULT_SIZES)}, got {split!r}")
    kw.setdefault("num_sequences", DEFAULT_SIZES[split])
    kw.setdefault("seed", DEFAULT_SEEDS[split])
    return MovingMNIST(split=split, **kw)
