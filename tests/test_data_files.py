"""Clip files: Srivastava's time-first .npy, our streamed .npz with truth, and bad files."""

import json
import zipfile

import numpy as np
import pytest
import torch

from stae.data import files as fl
from stae.data import moving_mnist as mm
from stae.errors import StaeError


def test_mnist_test_seq_layout(tmp_path):
    # Srivastava's file is uint8 (T=20, N, 64, 64), time first; a tiny one with a known pattern.
    t_len, n = 5, 3
    arr = np.zeros((t_len, n, 8, 8), np.uint8)
    for t in range(t_len):
        for i in range(n):
            arr[t, i] = 10 * t + i
    p = tmp_path / "mnist_test_seq.npy"
    np.save(p, arr)
    clips = fl.load_clip_file(p)
    assert clips.shape == (n, t_len, 1, 8, 8) and clips.dtype == np.uint8
    for i in range(n):
        for t in range(t_len):
            assert (clips[i, t, 0] == 10 * t + i).all()
    ds = fl.ClipFileDataset(p)
    assert len(ds) == n and set(ds[1]) == {"clip"}
    np.testing.assert_allclose(ds[1]["clip"][:, 0, 0, 0].numpy(), (10 * np.arange(t_len) + 1) / 255.0, rtol=1e-6)
    # 5-D float files are taken as (N, T, C, H, W).
    f5 = np.random.default_rng(0).random((2, 4, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "c.npy", f5)
    np.testing.assert_array_equal(fl.load_clip_file(tmp_path / "c.npy"), f5)
    assert torch.equal(fl.ClipFileDataset(tmp_path / "c.npy")[1]["clip"], torch.from_numpy(f5[1]))


@pytest.mark.parametrize("compress", [False, True])
def test_save_and_load_round_trip_with_truth(tmp_path, compress):
    p = tmp_path / "mm.npz"
    opts = dict(num_frames=6, size=48, lines=True)
    fl.save_moving_mnist(p, 7, seed=3, split="val", truth=True, compress=compress, chunk=3, **opts)
    g = mm.generate(3, range(7), split="val", with_truth=True, **opts)
    clips = fl.load_clip_file(p)
    assert clips.shape == (7, 6, 1, 48, 48) and clips.dtype == np.uint8
    np.testing.assert_array_equal(clips[:, :, 0], g["frames"])
    meta = fl.read_meta(p)
    assert meta["seed"] == 3 and meta["split"] == "val" and meta["digit_split"] == "test" and meta["truth"]
    assert meta["num_frames"] == 6 and meta["lines"] is True and meta["num_digits"] == 2
    ds = fl.ClipFileDataset(p)
    live = mm.MovingMNIST(7, 3, split="val", with_truth=True, **opts)
    for i in (0, 4, 6):
        a, b = ds[i], live[i]
        assert set(a) == {"clip", "masks", "flow"}
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k])
    with zipfile.ZipFile(p) as zf:
        kinds = {i.compress_type for i in zf.infolist()}
    assert kinds == {zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED}
    if not compress:
        assert isinstance(fl.load_clip_file(p), np.memmap)  # read lazily


def test_save_without_truth_and_defaults(tmp_path):
    p = tmp_path / "plain.npz"
    fl.save_moving_mnist(p, 3, binary=True)
    meta = fl.read_meta(p)
    assert meta["seed"] == mm.DEFAULT_SEEDS["train"] and not meta["truth"] and meta["binary"]
    ds = fl.ClipFileDataset(p)
    assert set(ds[0]) == {"clip"} and set(torch.unique(ds[0]["clip"]).tolist()) == {0.0, 1.0}
    with pytest.raises(StaeError, match="plain.npz: no ground truth stored"):
        fl.ClipFileDataset(p, with_truth=True)


def test_refuses_to_overwrite(tmp_path):
    p = tmp_path / "x.npz"
    p.write_bytes(b"precious")
    with pytest.raises(StaeError, match="x.npz: already exists"):
        fl.save_moving_mnist(p, 2)
    assert p.read_bytes() == b"precious"
    fl.save_moving_mnist(p, 2, force=True)
    assert fl.load_clip_file(p).shape[0] == 2
    with pytest.raises(StaeError, match="must end in .npz"):
        fl.save_moving_mnist(tmp_path / "x.npy", 2)
    with pytest.raises(StaeError, match="nowhere: output directory does not exist"):
        fl.save_moving_mnist(tmp_path / "nowhere" / "x.npz", 2)
    with pytest.raises(StaeError, match="dir.npz: is a directory"):
        (tmp_path / "dir.npz").mkdir()
        fl.save_moving_mnist(tmp_path / "dir.npz", 2, force=True)
    (tmp_path / "dir.npz").rmdir()
    # A failing generation (bad option) leaves nothing behind.
    with pytest.raises(StaeError):
        fl.save_moving_mnist(tmp_path / "y.npz", 2, size=10)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["x.npz"]


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(StaeError, match="missing.npy: no such file"):
        fl.load_clip_file(tmp_path / "missing.npy")
    np.save(tmp_path / "shape.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(StaeError, match=r"shape.npy: shape \(4, 8, 8\), expected 4-D time-first"):
        fl.load_clip_file(tmp_path / "shape.npy")
    np.save(tmp_path / "dtype.npy", np.zeros((2, 3, 8, 8), np.int64))
    with pytest.raises(StaeError, match="dtype.npy: dtype int64, expected uint8"):
        fl.load_clip_file(tmp_path / "dtype.npy")
    np.save(tmp_path / "chan.npy", np.zeros((2, 3, 2, 8, 8), np.uint8))
    with pytest.raises(StaeError, match="chan.npy: .* 2 channels"):
        fl.load_clip_file(tmp_path / "chan.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(StaeError, match="junk.npy: not a readable .npy"):
        fl.load_clip_file(tmp_path / "junk.npy")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(StaeError, match="junk.npz: not a readable .npz"):
        fl.load_clip_file(tmp_path / "junk.npz")
    np.savez(tmp_path / "nof.npz", clips=np.zeros((1, 2, 8, 8), np.uint8))
    with pytest.raises(StaeError, match="nof.npz: no 'frames' array .*has clips"):
        fl.load_clip_file(tmp_path / "nof.npz")
    (tmp_path / "clips.txt").write_text("1 2 3")
    with pytest.raises(StaeError, match=r"clips.txt: unsupported extension '.txt'"):
        fl.load_clip_file(tmp_path / "clips.txt")
    # A truncated file of ours.
    good = tmp_path / "good.npz"
    fl.save_moving_mnist(good, 2, num_frames=4)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(StaeError, match="cut.npz: "):
        fl.load_clip_file(cut)


def test_meta_is_plain_json(tmp_path):
    p = tmp_path / "m.npz"
    fl.save_moving_mnist(p, 1, speed=(0.05, 0.2), num_frames=3)
    with np.load(p, allow_pickle=False) as z:  # standard numpy reads our files
        meta = json.loads(str(z["meta"]))
        assert z["frames"].shape == (1, 3, 64, 64)
    assert meta["speed"] == [0.05, 0.2] and meta["format"] == "stae-moving-mnist"


def test_dataset_pickles_without_copying_the_file(tmp_path):
    import pickle

    p = tmp_path / "p.npz"
    fl.save_moving_mnist(p, 4, num_frames=5, truth=True)
    ds = fl.ClipFileDataset(p)
    blob = pickle.dumps(ds)
    assert len(blob) < 2000  # the path, not the 4 x 5 x 64 x 64 frames
    back = pickle.loads(blob)
    for k in ("clip", "masks", "flow"):
        assert torch.equal(back[2][k], ds[2][k])
