"""Texture sequences (:mod:`stae.data.textures`) saved as a ``.npz`` clip file, and read back
with their ground truth.

Members (N sequences, T frames, C channels, L layer slots):

============ =========================== =================================================
frames       uint8 (N, T, C, H, W)       0..255; what :func:`stae.data.load_clip_file` reads
to_object    float64 (N, T, L, 3, 3)     each layer's canvas -> layer affine map per frame
photo_ids    int16 (N, L)                photograph of each layer slot (-1: absent), in
                                         the order of ``meta["photos"]``
owner        uint8 (N, T, H, W)          only with truth: the layer of each pixel
meta         str (JSON)                  format, version, seed, split, photos, options
============ =========================== =================================================

Masks, flow and occlusion are not stored: they follow exactly from ``owner`` and
``to_object`` (:func:`~stae.data.textures.layer_masks`, :func:`~stae.data.textures.layer_flow`,
:func:`~stae.data.textures.occlusion_mask`), which :class:`TexturesFileDataset` does per item.
Written member by member under a temporary name renamed at the end, like
:func:`stae.data.files.save_moving_mnist`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from stae.data import textures as tx
from stae.data.files import _npz_member, _npz_names, load_clip_file, write_sequences
from stae.errors import StaeError

FORMAT_NAME = "stae-textures"
FORMAT_VERSION = 1


def _check_out(path: Path, force: bool) -> None:
    if path.suffix.lower() != ".npz":
        raise StaeError(f"{path}: output must end in .npz")
    if path.is_dir():
        raise StaeError(f"{path}: is a directory")
    if path.exists() and not force:
        raise StaeError(f"{path}: already exists (use --force / force=True to overwrite)")
    if not path.parent.exists():
        raise StaeError(f"{path.parent}: output directory does not exist")


def save_textures(path: str | os.PathLike, num_sequences: int | None = None, seed: int | None = None,
                  split: str = "train", truth: bool = False, force: bool = False, compress: bool = False,
                  photos=None, chunk: int = 100, progress: Callable[[int], None] | None = None, **options) -> Path:
    """Generate texture sequences 0..N-1 of ``seed`` and save them as a .npz (module docstring).

    ``num_sequences``/``seed`` default to the split's (10,000/1,000/1,000; seeds 0/1/2).
    ``options`` are :class:`~stae.data.textures.TextureOptions` fields; ``photos`` as in
    :func:`~stae.data.textures.generate`. Refuses to overwrite unless ``force``.
    """
    path = Path(path)
    _check_out(path, force)
    if split not in tx.SPLITS:
        raise StaeError(f"split must be one of {sorted(tx.SPLITS)}, got {split!r}")
    n = tx.DEFAULT_SIZES[split] if num_sequences is None else int(num_sequences)
    seed = tx.DEFAULT_SEEDS[split] if seed is None else int(seed)
    if n < 1:
        raise StaeError(f"number of sequences must be >= 1, got {n}")
    o = tx.TextureOptions(**options).checked()
    files = tx.photo_files(split, photos)
    tx.generate(seed, [], split=split, photos=list(files), with_truth=truth, **options)  # validates
    (h, w), t, c, big_l = o.size, o.num_frames, o.channels, o.num_layers
    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(o).items()}
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "num_sequences": n, "seed": seed, "split": split,
            "photos": [Path(f).stem for f in files], "photo_source": "shipped" if photos is None else "user",
            "truth": bool(truth), **opts}

    def generate(s: int, e: int) -> dict:
        return tx.generate(seed, np.arange(s, e), split=split, photos=list(files), **options)

    per_sequence = {"to_object": (np.float64, (t, big_l, 3, 3)), "photo_ids": (np.int16, (big_l,))}
    return write_sequences(path, n, generate, (t, c, h, w), per_sequence, meta, truth=truth, compress=compress,
                           chunk=chunk, progress=progress)


class TexturesFileDataset(Dataset):
    """A file of :func:`save_textures`: ``ds[i]`` -> {"clip": float32 (T, C, H, W)} and, when the
    file stores truth (``owner``), "masks", "flow" and "occlusion" as
    :class:`~stae.data.textures.MovingTextures` returns them (bit for bit)."""

    def __init__(self, path: str | os.PathLike, with_truth: bool | None = None):
        self.path = Path(path)
        self._open(with_truth)

    def _open(self, with_truth: bool | None) -> None:
        self.clips = load_clip_file(self.path)
        names = _npz_names(self.path) if self.path.suffix.lower() == ".npz" else []
        has_truth = "owner" in names and "to_object" in names
        if with_truth and not has_truth:
            raise StaeError(f"{self.path}: no texture ground truth stored (save it with --truth)")
        self.with_truth = has_truth if with_truth is None else bool(with_truth)
        if self.with_truth:
            self.owner = _npz_member(self.path, "owner")
            self.to_object = np.asarray(_npz_member(self.path, "to_object"))
            if self.owner.shape[:2] != self.clips.shape[:2] or self.to_object.shape[:2] != self.clips.shape[:2]:
                raise StaeError(f"{self.path}: 'owner' {self.owner.shape} / 'to_object' {self.to_object.shape} "
                                f"do not match 'frames' {self.clips.shape}")

    def __getstate__(self) -> dict:
        return {"path": self.path, "with_truth": self.with_truth}  # reopen in workers, never copy the map

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._open(state["with_truth"])

    def __len__(self) -> int:
        return int(self.clips.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"clip index {i} out of range for {len(self)} clips in {self.path}")
        clip = np.array(self.clips[i])
        clip = clip.astype(np.float32) / np.float32(255.0) if clip.dtype == np.uint8 else clip.astype(np.float32)
        out = {"clip": torch.from_numpy(clip)}
        if self.with_truth:
            owner = np.array(self.owner[i])
            flow = tx.layer_flow(owner, self.to_object[i])
            out["masks"] = torch.from_numpy(tx.layer_masks(owner, self.to_object.shape[2]))
            out["flow"] = torch.from_numpy(flow)
            out["occlusion"] = torch.from_numpy(tx.occlusion_mask(owner, flow))
        return out
