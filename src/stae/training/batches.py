"""Datasets from the config, and the data order: a pure function of (seed, step).

Epoch ``e`` visits the training sequences in the order ``default_rng([seed, e]).permutation(N)``
and, with ``data.random_offset``, takes from sequence ``i`` the window of ``tau + 1`` frames
starting at an offset drawn from the same generator. Update ``s`` uses positions
``[(s % S) * B, (s % S + 1) * B)`` of epoch ``s // S`` (``B`` the global batch, ``S`` the
updates per epoch; the last incomplete batch is dropped). Rank ``r`` of ``W`` takes the
``r``-th contiguous ``B / W`` of that batch. Nothing but the step is needed to resume, and a
distributed run sees exactly the sequences of the single-process run.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from stae.errors import StaeError


def build_datasets(d, truth: bool = False) -> tuple[Dataset, Dataset]:
    """(train, validation) datasets of data config ``d``; items are {"clip": (T, C, H, W)} and,
    with ``truth`` (generated sources only), the training items also carry "flow"."""
    if d.source == "moving_mnist":
        from stae.data.moving_mnist import MovingMNIST

        kw = dict(num_digits=d.num_digits, num_frames=d.num_frames, size=d.size, speed=d.speed,
                  lines=d.lines, binary=d.binary)
        return (MovingMNIST(d.train_sequences, seed=d.seed, split="train", with_truth=truth, **kw),
                MovingMNIST(d.val_sequences, seed=d.seed + 1, split="val", **kw))
    if d.source == "file":
        from stae.data.files import ClipFileDataset

        train = ClipFileDataset(d.path, with_truth=False)
        if d.val_path:
            return train, ClipFileDataset(d.val_path, with_truth=False)
        n = len(train)
        n_val = int(round(n * d.val_fraction))
        if n_val < 1 or n_val >= n:
            raise StaeError(f"{d.path}: {n} clips cannot be split with data.val_fraction={d.val_fraction} "
                            f"(set data.val_path or another fraction)")
        # The last clips are the validation set: a fixed, documented split.
        return Subset(train, range(n - n_val)), Subset(train, range(n - n_val, n))
    if d.source == "video":
        from stae.data.video import VideoClipDataset

        kw = dict(clip_len=d.context + 1, size=(d.size, d.size), grayscale=d.grayscale, stride=d.stride,
                  val_fraction=d.val_fraction, seed=d.seed)
        return VideoClipDataset(d.path, split="train", **kw), VideoClipDataset(d.path, split="val", **kw)
    if d.source in ("textures", "mix"):
        return _texture_datasets(d, truth)
    raise StaeError(f"config key 'data.source': unknown source {d.source!r}")


def _texture_datasets(d, truth: bool = False) -> tuple[Dataset, Dataset]:
    """textures: generated train (training photographs, seed) and val (test photographs, seed + 1);
    mix: the same, training clips mixed with video crops of ``d.path`` (``d.video_weight``)."""
    from stae.data.textures import MovingTextures

    kw = dict(num_frames=d.num_frames, size=d.size, channels=1 if d.grayscale else 3, photos=d.photos_dir)
    try:
        kw.update(layers=tuple(d.layers), noise=d.noise, still=d.still, still_layers=d.still_layers)
        train = MovingTextures(d.train_sequences, seed=d.seed, split="train", with_truth=truth, **kw)
        val = MovingTextures(d.val_sequences, seed=d.seed + 1, split="val", **kw)
    except StaeError as e:  # the library names its parameter; say the config key
        name = str(e).split(" ", 1)[0]
        key = {"num_sequences": "train_sequences", "channels": "grayscale"}.get(name, name)
        raise StaeError(f"config key 'data.{key}': {e}" if hasattr(d, key) else str(e)) from None
    if d.source == "mix" and d.video_weight > 0:
        from stae.data.mixture import Mixture
        from stae.data.video_crops import VideoCrops

        crops = VideoCrops(d.train_sequences, seed=d.seed, videos=d.path, clip_len=d.num_frames, size=d.size,
                           grayscale=d.grayscale, stride=d.stride, still=d.video_still)
        train = Mixture([train, crops], [1.0 - d.video_weight, d.video_weight], d.train_sequences, seed=d.seed)
    return train, val


def fetch(ds: Dataset, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
    """Items ``indices`` of ``ds``, in one vectorised call when the dataset has one."""
    getitems = getattr(ds, "__getitems__", None)
    if getitems is not None and not isinstance(ds, Subset):
        return getitems(list(indices))
    if isinstance(ds, Subset):
        return fetch(ds.dataset, [ds.indices[i] for i in indices])
    return [ds[i] for i in indices]


class DataOrder:
    """Which sequences and windows update ``step`` uses (see the module docstring)."""

    def __init__(self, num_sequences: int, num_frames: int, clip_len: int, global_batch: int, seed: int,
                 random_offset: bool, rank: int = 0, world_size: int = 1):
        if num_frames < clip_len:
            raise StaeError(f"the data has clips of {num_frames} frames, training needs context + 1 = {clip_len}")
        if global_batch % world_size:
            raise StaeError(f"train.batch_size={global_batch} must be divisible by the number of processes ({world_size})")
        if num_sequences < global_batch:
            raise StaeError(f"{num_sequences} training sequences cannot fill one batch of {global_batch}")
        self.n, self.frames, self.clip_len = num_sequences, num_frames, clip_len
        self.batch, self.seed, self.random_offset = global_batch, seed, random_offset
        self.rank, self.world = rank, world_size
        self.steps_per_epoch = num_sequences // global_batch

    @lru_cache(maxsize=2)
    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n)
        span = self.frames - self.clip_len + 1
        offsets = rng.integers(0, span, size=self.n) if self.random_offset else np.zeros(self.n, np.int64)
        return order, offsets

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(sequence indices, window offsets) of this rank for update ``step``."""
        order, offsets = self._epoch(self.epoch_of(step))
        pos = (step % self.steps_per_epoch) * self.batch
        per = self.batch // self.world
        sl = slice(pos + self.rank * per, pos + (self.rank + 1) * per)
        return order[sl], offsets[sl]


def make_batch(ds: Dataset, indices: Sequence[int], offsets: Sequence[int], clip_len: int) -> torch.Tensor:
    """Clips (B, clip_len, C, H, W): item ``indices[j]`` from frame ``offsets[j]``."""
    items = fetch(ds, indices)
    return torch.stack([it["clip"][int(o):int(o) + clip_len] for it, o in zip(items, offsets)])


def make_batch_with_flow(ds: Dataset, indices: Sequence[int], offsets: Sequence[int], clip_len: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`make_batch` and the true backward flows of the same windows (B, clip_len - 1, 2,
    H, W) (``flow[t]`` from frame t + 1 to frame t) of a dataset built with ``truth``."""
    items = fetch(ds, indices)
    clips = torch.stack([it["clip"][int(o):int(o) + clip_len] for it, o in zip(items, offsets)])
    return clips, torch.stack([it["flow"][int(o):int(o) + clip_len - 1] for it, o in zip(items, offsets)])


def val_batches(ds: Dataset, batch_size: int, clip_len: int, limit: int = 0, rank: int = 0,
                world_size: int = 1):
    """Validation clips in a fixed order, first ``clip_len`` frames of each, this rank's share."""
    n = len(ds)
    starts = list(range(0, n, batch_size))
    if limit:
        starts = starts[:limit]
    for k, s in enumerate(starts):
        if k % world_size != rank:
            continue
        idx = list(range(s, min(n, s + batch_size)))
        yield make_batch(ds, idx, [0] * len(idx), clip_len)


def num_frames_of(ds: Dataset) -> int:
    if len(ds) == 0:
        raise StaeError("the training dataset is empty")
    return int(fetch(ds, [0])[0]["clip"].shape[0])


def describe(ds: Dataset) -> str:
    item = fetch(ds, [0])[0]["clip"]
    return f"{len(ds)} clips of {tuple(item.shape)}"


def check_channels(ds: Dataset, in_channels: int, what: str) -> None:
    c = int(fetch(ds, [0])[0]["clip"].shape[1])
    if c != in_channels:
        raise StaeError(f"the {what} data has {c} channel(s) but model.in_channels={in_channels}")

