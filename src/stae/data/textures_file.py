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

from stae.data import textures as tx
from stae.data.files import ClipFileDataset, check_npz_out, split_count_seed, write_sequences

FORMAT_NAME = "stae-textures"
FORMAT_VERSION = 1


def save_textures(path: str | os.PathLike, num_sequences: int | None = None, seed: int | None = None,
                  split: str = "train", truth: bool = False, force: bool = False, compress: bool = False,
                  photos=None, chunk: int = 100, progress: Callable[[int], None] | None = None, **options) -> Path:
    """Generate texture sequences 0..N-1 of ``seed`` and save them as a .npz (module docstring).

    ``num_sequences``/``seed`` default to the split's (10,000/1,000/1,000; seeds 0/1/2).
    ``options`` are :class:`~stae.data.textures.TextureOptions` fields; ``photos`` as in
    :func:`~stae.data.textures.generate`. Refuses to overwrite unless ``force``.
    """
    path = Path(path)
    check_npz_out(path, force)
    n, seed = split_count_seed(split, tx.DEFAULT_SIZES, tx.DEFAULT_SEEDS, num_sequences, seed)
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


class TexturesFileDataset(ClipFileDataset):
    """A file of :func:`save_textures`: ``ds[i]`` -> {"clip": float32 (T, C, H, W)} and, when the
    file stores truth (``owner``), "masks", "flow" and "occlusion" as
    :class:`~stae.data.textures.MovingTextures` returns them (bit for bit)."""

    TRUTH = "to_object"

    def truth(self, owner: np.ndarray, stored: np.ndarray) -> dict[str, torch.Tensor]:
        flow = tx.layer_flow(owner, stored)
        return {"masks": torch.from_numpy(tx.layer_masks(owner, stored.shape[1])), "flow": torch.from_numpy(flow),
                "occlusion": torch.from_numpy(tx.occlusion_mask(owner, flow))}
