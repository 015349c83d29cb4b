"""Moving MNIST generator: determinism per (seed, index), motion model, options, exact truth."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from stae.data import moving_mnist as mm
from stae.data.digits import load_digits
from stae.errors import StaeError
from stae.model.warp import warp


def layers_of(g, b, digits, size=64, lines=True):
    """Independent re-rendering of sequence b: one canvas per digit (T, K, H, W) + a line layer (H, W)."""
    pos, ids = g["positions"][b], g["digit_ids"][b]
    t_len, k_len = pos.shape[:2]
    dh, dw = digits.shape[1:]
    lay = np.zeros((t_len, k_len, size, size), np.uint8)
    for t in range(t_len):
        for k in range(k_len):
            x, y = pos[t, k]
            lay[t, k, y:y + dh, x:x + dw] = digits[ids[k]]
    line = np.zeros((size, size), np.uint8)
    r, c = g["lines"][b]
    if r >= 0:
        line[r, :] = 255
        line[:, c] = 255
    return lay, line


def test_deterministic_alone_batch_dataset_and_loader():
    batch = mm.generate(7, [3, 0, 11, 5], with_truth=True)
    for j, i in enumerate([3, 0, 11, 5]):
        alone = mm.generate(7, [i], with_truth=True)
        for key in batch:
            np.testing.assert_array_equal(alone[key][0], batch[key][j])
    ds = mm.MovingMNIST(12, seed=7, with_truth=True)
    item = ds[11]
    assert item["clip"].dtype == torch.float32 and item["clip"].shape == (20, 1, 64, 64)
    assert item["masks"].dtype == torch.bool and item["masks"].shape == (20, 2, 64, 64)
    assert item["flow"].dtype == torch.float32 and item["flow"].shape == (19, 2, 64, 64)
    np.testing.assert_array_equal(item["clip"].numpy()[:, 0], batch["frames"][2] / np.float32(255))
    np.testing.assert_array_equal(item["flow"].numpy(), batch["flow"][2])
    np.testing.assert_array_equal(ds[-1]["masks"].numpy(), batch["masks"][2])
    # A DataLoader with a worker process and shuffling gives the same sequences.
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=1, generator=torch.Generator().manual_seed(0))
    seen = {}
    for b in loader:
        assert b["clip"].shape == (4, 20, 1, 64, 64)
        for clip in b["clip"]:
            seen[clip.numpy().tobytes()] = True
    assert len(seen) == 12
    assert all(ds[i]["clip"].numpy().tobytes() in seen for i in range(12))
    # Another seed or index gives another sequence.
    assert not np.array_equal(mm.generate(8, [3])["frames"], batch["frames"][:1])
    assert not np.array_equal(batch["frames"][0], batch["frames"][1])
    with pytest.raises(IndexError):
        ds[12]


def test_motion_model_inside_canvas_speed_and_bounce():
    g = mm.generate(1, range(40), num_frames=30)
    pos = g["positions"].astype(int)  # (B, T, K, 2)
    assert pos.min() >= 0 and pos.max() <= 64 - 28
    # Frames are non-zero only inside the digits' boxes.
    for b in range(3):
        box = np.zeros((30, 64, 64), bool)
        for t in range(30):
            for k in range(2):
                x, y = pos[b, t, k]
                box[t, y:y + 28, x:x + 28] = True
        assert not g["frames"][b][~box].any()
    step = np.abs(np.diff(pos, axis=1))
    assert step.max() <= int(np.ceil(0.1 * 36)) + 1  # speed 0.1 of the 36 free pixels
    # Bounces happen: some velocity component changes sign within a sequence.
    d = np.diff(pos, axis=1)
    assert (np.sign(d[:, 1:]) * np.sign(d[:, :-1]) < 0).any()
    # Speed 0: digits stand still.
    still = mm.generate(1, range(3), speed=0.0)["positions"]
    assert (still == still[:, :1]).all()
    # Digits are picked from the whole pool.
    many = mm.generate(2, range(300))["digit_ids"]
    assert many.min() >= 0 and many.max() < 4000 and len(np.unique(many)) > 400


def test_truth_flow_warps_frame_t_onto_t_plus_1():
    digits = load_digits("train")
    g = mm.generate(3, range(6), with_truth=True, lines=True)
    checked = bounced = 0
    for b in range(6):
        lay, line = layers_of(g, b, digits)
        frames = torch.from_numpy(g["frames"][b]).float() / 255
        # The independent rendering agrees with the generator.
        np.testing.assert_array_equal(np.maximum(lay.max(1), line[None]), g["frames"][b])
        owner = g["owner"][b]
        for t in range(19):
            flow = g["flow"][b, t]
            out = warp(frames[t][None, None], torch.from_numpy(flow)[None])[0, 0].numpy()
            ys, xs = np.nonzero(owner[t + 1])
            for y, x in zip(ys, xs):
                k = owner[t + 1, y, x] - 1
                sx, sy = x + int(flow[0, y, x]), y + int(flow[1, y, x])
                others = [j for j in range(lay.shape[1]) if j != k]
                if lay[t + 1, others, y, x].any() or lay[t, others, sy, sx].any() or line[y, x] or line[sy, sx]:
                    continue  # occluded or overlapping in frame t or t+1
                assert abs(out[y, x] - frames[t + 1, y, x].item()) < 1e-5
                checked += 1
            # Flow is the owner's displacement, zero on the background.
            d = g["positions"][b, t].astype(np.float32) - g["positions"][b, t + 1]
            for k in range(2):
                m = owner[t + 1] == k + 1
                assert (flow[0][m] == d[k, 0]).all() and (flow[1][m] == d[k, 1]).all()
            assert not flow[:, owner[t + 1] == 0].any()
            v0 = g["positions"][b, t + 1].astype(int) - g["positions"][b, t]
            if t > 0:
                v1 = g["positions"][b, t].astype(int) - g["positions"][b, t - 1]
                bounced += int((v0 * v1 < 0).any())
    assert checked > 10_000 and bounced > 0  # exact at bounces too (integer positions)


def test_masks_partition_digit_pixels():
    for kw in ({}, {"lines": True}, {"binary": True}, {"num_digits": 3, "size": 48}):
        g = mm.generate(4, range(5), with_truth=True, **kw)
        masks, frames = g["masks"], g["frames"]
        k = kw.get("num_digits", 2)
        assert masks.shape == frames.shape[:2] + (k,) + frames.shape[2:]
        count = masks.sum(axis=2)
        assert count.max() <= 1  # no pixel in two masks
        line = np.zeros(frames.shape, bool)
        for b, (r, c) in enumerate(g["lines"]):
            if r >= 0:
                line[b, :, r, :] = True
                line[b, :, :, c] = True
        np.testing.assert_array_equal(count == 1, (frames > 0) & ~line)
        np.testing.assert_array_equal(masks, mm.masks_from_owner(g["owner"], k))


def test_mask_is_the_winner_of_the_max():
    digits = load_digits("train")
    g = mm.generate(9, range(4), with_truth=True)
    for b in range(4):
        lay, _ = layers_of(g, b, digits)
        winner = np.argmax(lay, axis=1)  # ties -> lower index
        on = lay.max(1) > 0
        np.testing.assert_array_equal(g["owner"][b], np.where(on, winner + 1, 0))


def test_lines_variant():
    plain = mm.generate(5, range(4))
    lined = mm.generate(5, range(4), lines=True)
    np.testing.assert_array_equal(plain["positions"], lined["positions"])  # digits unchanged
    assert (plain["lines"] == -1).all()
    rows, cols = set(), set()
    for b, (r, c) in enumerate(lined["lines"]):
        assert 0 <= r < 64 and 0 <= c < 64
        assert (lined["frames"][b, :, r, :] == 255).all() and (lined["frames"][b, :, :, c] == 255).all()
        off = np.ones((64, 64), bool)
        off[r, :] = off[:, c] = False
        np.testing.assert_array_equal(lined["frames"][b][:, off], plain["frames"][b][:, off])
        rows.add(int(r))
        cols.add(int(c))
    assert len(rows) > 1 and len(cols) > 1  # random positions


def test_binary_vs_float():
    f = mm.generate(6, range(3))["frames"]
    b = mm.generate(6, range(3), binary=True)["frames"]
    assert set(np.unique(b)) == {0, 255}
    np.testing.assert_array_equal(b == 255, f / 255.0 >= 0.5)
    b2 = mm.generate(6, range(3), binary=True, threshold=0.9)["frames"]
    np.testing.assert_array_equal(b2 == 255, f / 255.0 >= 0.9)
    assert len(np.unique(f)) > 50  # float frames keep the grey levels
    ds = mm.MovingMNIST(2, 6, binary=True)
    assert set(torch.unique(ds[0]["clip"]).tolist()) == {0.0, 1.0}


def test_canvas_size_digit_count_and_custom_digits():
    g = mm.generate(0, range(2), num_digits=3, num_frames=5, size=(40, 50), with_truth=True)
    assert g["frames"].shape == (2, 5, 40, 50) and g["flow"].shape == (2, 4, 2, 40, 50)
    pos = g["positions"]
    assert pos[..., 0].max() <= 50 - 28 and pos[..., 1].max() <= 40 - 28
    small = np.full((3, 5, 5), 200, np.uint8)
    s = mm.generate(0, [0], digits=small, size=16, num_digits=1)
    assert s["frames"].shape == (1, 20, 16, 16) and (s["frames"][0] > 0).sum(axis=(1, 2)).tolist() == [25] * 20
    ds = mm.MovingMNIST(3, 0, digits=small, size=16, num_digits=1)
    assert ds[2]["clip"].shape == (20, 1, 16, 16)


def test_default_datasets_and_digit_splits():
    assert mm.DEFAULT_SIZES == {"train": 10_000, "val": 3_000, "test": 2_000}
    tr, va, te = (mm.default_dataset(s) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (10_000, 3_000, 2_000)
    assert len({tr.seed, va.seed, te.seed}) == 3
    np.testing.assert_array_equal(tr.digits, load_digits("train"))
    np.testing.assert_array_equal(va.digits, load_digits("test"))
    np.testing.assert_array_equal(te.digits, load_digits("test"))
    assert not torch.equal(va[0]["clip"], te[0]["clip"])
    assert len(mm.default_dataset("val", num_sequences=5)) == 5


def test_bad_options():
    with pytest.raises(StaeError, match="smaller than the 28x28 digits"):
        mm.MovingMNIST(2, 0, size=20)
    with pytest.raises(StaeError, match="speed must be >= 0"):
        mm.generate(0, [0], speed=-1)
    with pytest.raises(StaeError, match="split must be one of"):
        mm.MovingMNIST(2, 0, split="dev")
    with pytest.raises(StaeError, match="threshold"):
        mm.generate(0, [0], binary=True, threshold=0)
    with pytest.raises(StaeError, match="digits must be a non-empty uint8"):
        mm.generate(0, [0], digits=np.zeros((2, 28, 28), np.float32))
