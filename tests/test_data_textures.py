"""Real textures in motion: exact flow, masks, occlusion, determinism, options, CLI and files."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from stae.cli import main
from stae.data import textures as tx
from stae.data.files import ClipFileDataset, load_clip_file, read_meta
from stae.data.textures_file import TexturesFileDataset
from stae.errors import StaeError
from stae.model.warp import warp

SMALL = dict(num_frames=6, size=(32, 40))


def frames01(g, b):
    return torch.from_numpy(g["frames"][b]).float() / 255.0  # (T, C, H, W)


def warp_errors(g, b):
    """|warp(frame t, true flow) - frame t+1| and |frame t - frame t+1| on non-occluded pixels."""
    f = frames01(g, b)
    flow = torch.from_numpy(g["flow"][b])
    warped = warp(f[:-1], flow)
    keep = ~torch.from_numpy(g["occlusion"][b])[:, None].expand_as(warped)
    return (warped - f[1:]).abs()[keep], (f[:-1] - f[1:]).abs()[keep]


def pool(channels=1):
    return tx.load_photo_pool(tx.photo_files("train"), channels)


def hand_scene(t_len, bg_shift, square_at=None, square_step=(0, 0)):
    """Background translated by an integer ``bg_shift`` (photo px per frame, scale 1, no
    rotation) and, optionally, a 10x10 square layer starting at ``square_at`` moving by
    ``square_step`` canvas px per frame."""
    p = pool()
    big_l = 2 if square_at else 1
    to_object = np.tile(np.eye(3), (t_len, big_l, 1, 1))
    to_object[:, 0, 0, 2] = 60 + bg_shift[0] * np.arange(t_len)  # canvas p -> photo p + c_t
    to_object[:, 0, 1, 2] = 70 + bg_shift[1] * np.arange(t_len)
    to_photo = np.tile(np.eye(3), (big_l, 1, 1))
    entry = np.array([0] + [1 * tx.LEVELS] * (big_l - 1))
    shapes = [None]
    if square_at:
        cx = square_at[0] + square_step[0] * np.arange(t_len)
        cy = square_at[1] + square_step[1] * np.arange(t_len)
        to_object[:, 1, 0, 2], to_object[:, 1, 1, 2] = -cx, -cy  # canvas -> object: p - centre
        to_photo[1, :2, 2] = 100.0
        a = 5 * math.sqrt(2)  # square of half-side 5: a 4-gon of circumradius a, edges axis-aligned
        shapes.append({"kind": 2, "a": a, "b": a, "sides": 4, "phase": 0.0, "amp": np.zeros(3),
                       "harm_phase": np.zeros(3), "extent": a})
    return tx.Scene(to_object, to_photo, entry, np.arange(big_l), shapes, np.ones(t_len)), p


def truth_of(scene, hw, p):
    frames, owner = tx.render(scene, p, hw)
    flow = tx.layer_flow(owner, scene.to_object)
    return {"frames": frames[None], "owner": owner[None], "flow": flow[None],
            "occlusion": tx.occlusion_mask(owner, flow)[None]}


def test_warp_by_true_flow_reproduces_next_frame():
    # Interpolation error only: frame t is the photograph sampled at pixel centres, and warp
    # interpolates those samples bilinearly at p + flow, where frame t+1 samples the photograph
    # itself. On these photographs (one canvas pixel covers at most one photo pixel) the mean is
    # ~0.002-0.005 and the 99th percentile ~0.02-0.04 (an 8-bit step is 0.004); a few pixels at
    # sharp photo edges reach ~0.15. Copying the previous frame is 3-10x worse.
    g = tx.generate(3, range(4), with_truth=True, **SMALL)
    for b in range(4):
        err, copy = warp_errors(g, b)
        assert err.numel() > 0.6 * g["occlusion"][b].size
        assert err.mean() < 0.01 and torch.quantile(err, 0.99) < 0.08 and err.max() < 0.35
        assert err.mean() < 0.5 * copy.mean()


def test_flow_is_exact_geometrically():
    # Independent of any texture: the true flow carries each pixel of frame t+1 to the point of
    # the same layer in frame t (to float32 precision of the stored flow).
    g = tx.generate(5, range(2), with_truth=True, **SMALL)
    h, w = SMALL["size"]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for b in range(2):
        for t in range(SMALL["num_frames"] - 1):
            for layer in np.unique(g["owner"][b, t + 1]):
                m = g["owner"][b, t + 1] == layer
                p1 = np.stack([xs[m], ys[m], np.ones(m.sum())])
                p0 = p1.copy()
                p0[0] += g["flow"][b, t, 0][m]
                p0[1] += g["flow"][b, t, 1][m]
                np.testing.assert_allclose(g["to_object"][b, t, layer] @ p0, g["to_object"][b, t + 1, layer] @ p1, atol=1e-4)


def test_integer_pan_is_exact():
    scene, p = hand_scene(5, bg_shift=(2, -1))
    g = truth_of(scene, (24, 32), p)
    np.testing.assert_array_equal(g["flow"][0, :, 0], 2.0)
    np.testing.assert_array_equal(g["flow"][0, :, 1], -1.0)
    occ = g["occlusion"][0]
    assert occ[:, :, -2:].all() and occ[:, :1, :].all() and occ[:, 1:, :-2].sum() == 0  # content entering the frame
    f = frames01(g, 0)
    warped = warp(f[:-1], torch.from_numpy(g["flow"][0]))
    np.testing.assert_allclose(warped[:, :, 1:, :-2], f[1:, :, 1:, :-2], atol=1e-5)
    np.testing.assert_array_equal(g["frames"][0, 1:, :, 1:, :-2], g["frames"][0, :-1, :, :-1, 2:])


def test_occlusion_marks_revealed_and_entering_pixels():
    # A square moving right by 3 px over a still background: the background it uncovers in frame
    # t+1 had its source hidden by the square in frame t -> occluded, exactly those pixels.
    scene, p = hand_scene(4, bg_shift=(0, 0), square_at=(10.5, 12.5), square_step=(3, 0))
    g = truth_of(scene, (24, 32), p)
    owner, occ = g["owner"][0], g["occlusion"][0]
    assert (owner == 1).sum(axis=(1, 2)).tolist() == [100] * 4  # the 10x10 square
    revealed = (owner[:-1] == 1) & (owner[1:] == 0)
    assert revealed.sum(axis=(1, 2)).tolist() == [30] * 3
    np.testing.assert_array_equal(occ, revealed)
    flow = g["flow"][0]
    np.testing.assert_array_equal(flow[:, 0][owner[1:] == 1], -3.0)  # backward: from where it came
    np.testing.assert_array_equal(flow[:, :][np.broadcast_to((owner[1:] == 0)[:, None], flow.shape)], 0.0)
    err, _ = warp_errors(g, 0)
    assert err.max() < 1e-5


def test_masks_partition_the_frame_and_layer_counts():
    g = tx.generate(1, range(6), with_truth=True, layers=(0, 3), **SMALL)
    assert g["masks"].shape == (6, 6, 4, 32, 40)
    np.testing.assert_array_equal(g["masks"].sum(axis=2), 1)
    for b in range(6):
        present = g["photo_ids"][b] >= 0
        assert present[0] and not g["masks"][b][:, ~present].any()
        assert len(set(g["photo_ids"][b][present].tolist())) == present.sum()  # distinct photographs


def test_owner_box_evaluation_matches_full_frame():
    # render_owner evaluates each shape only in a box around it: the same as everywhere.
    o = tx.TextureOptions(layers=(3, 3), layer_size=(0.2, 0.45), num_frames=8, size=(24, 24), zoom=0.04).checked()
    p = pool()
    ys, xs = np.mgrid[0:24, 0:24].astype(np.float32)
    for i in range(6):
        scene = tx.draw_scene(0, i, o, p)
        full = np.zeros((8, 24, 24), np.uint8)
        for slot, shape in enumerate(scene.shapes):
            if shape is not None:
                m = scene.to_object[:, slot, :2, :].astype(np.float32)[:, None, None]
                inside = tx.inside_shape(m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2],
                                         m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2], shape)
                full[inside] = slot
        np.testing.assert_array_equal(tx.render_owner(scene, (24, 24)), full)


def test_deterministic_alone_batch_dataset_and_loader():
    batch = tx.generate(7, [3, 0, 5], with_truth=True, **SMALL)
    for j, i in enumerate([3, 0, 5]):
        alone = tx.generate(7, [i], with_truth=True, **SMALL)
        for key in batch:
            np.testing.assert_array_equal(alone[key][0], batch[key][j])
    ds = tx.MovingTextures(6, seed=7, with_truth=True, **SMALL)
    item = ds[5]
    assert item["clip"].dtype == torch.float32 and item["clip"].shape == (6, 1, 32, 40)
    assert item["flow"].shape == (5, 2, 32, 40) and item["occlusion"].dtype == torch.bool
    np.testing.assert_array_equal(item["clip"].numpy(), batch["frames"][2] / np.float32(255.0))
    loaded = next(iter(DataLoader(ds, batch_size=6, num_workers=1)))
    np.testing.assert_array_equal(loaded["flow"][3].numpy(), batch["flow"][0])
    np.testing.assert_array_equal(loaded["clip"][0].numpy() * 255, batch["frames"][1])
    assert not np.array_equal(tx.generate(8, [3], **SMALL)["frames"], batch["frames"][:1])


def test_noise_and_brightness_change_only_the_pixels():
    clean = tx.generate(2, range(3), with_truth=True, **SMALL)
    noisy = tx.generate(2, range(3), with_truth=True, noise=0.05, brightness=0.05, **SMALL)
    for key in ("owner", "flow", "occlusion", "to_object", "photo_ids"):
        np.testing.assert_array_equal(clean[key], noisy[key])
    diff = noisy["frames"].astype(np.float32) - clean["frames"]
    assert np.abs(diff).mean() > 5
    np.testing.assert_array_equal(noisy["frames"], tx.generate(2, range(3), noise=0.05, brightness=0.05, **SMALL)["frames"])


def test_colour_splits_and_photo_folders(tmp_path):
    g = tx.generate(0, range(2), channels=3, **SMALL)
    assert g["frames"].shape == (2, 6, 3, 32, 40)
    assert np.abs(g["frames"][:, :, 0].astype(int) - g["frames"][:, :, 2]).mean() > 1  # not grey
    train, test = set(tx.photo_files("train")), set(tx.photo_files("test"))
    assert not train & test and tx.photo_files("val") == tx.photo_files("test") and len(train | test) == 11
    # A user folder: every fifth photograph is held out.
    from PIL import Image

    for k in range(6):
        Image.fromarray(np.random.default_rng(k).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"p{k}.png")
    (tmp_path / "notes.txt").write_text("not a photo")
    assert [f.rsplit("/", 1)[1] for f in tx.photo_files("val", tmp_path)] == ["p4.png"]
    assert len(tx.photo_files("train", tmp_path)) == 5
    g = tx.generate(0, [0], photos=tmp_path, layers=2, **SMALL)
    assert g["frames"].shape == (1, 6, 1, 32, 40) and g["photo_ids"].max() < 5


@pytest.mark.parametrize("bad, word", [
    (dict(channels=2), "channels"), (dict(layers=(3, 1)), "layers"), (dict(layers=1.5), "layers"),
    (dict(size=1), "size"), (dict(num_frames=0), "num_frames"), (dict(speed=-1.0), "speed"),
    (dict(scale=0), "scale"), (dict(zoom=0.7), "zoom"), (dict(noise=float("nan")), "noise"),
    (dict(layer_size="big"), "layer_size"), (dict(still=1.5), "still must"), (dict(still_layers=-0.1), "still_layers"),
    (dict(still=float("nan")), "still must"),
])
def test_bad_options_name_the_parameter(bad, word):
    with pytest.raises(StaeError, match=word):
        tx.MovingTextures(4, seed=0, **bad)
    with pytest.raises(StaeError, match="split"):
        tx.generate(0, [0], split="dev")
    with pytest.raises(StaeError, match="photos_dir"):
        tx.MovingTextures(4, seed=0, photos="/no/such/folder")


def test_cli_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "tex.npz"
    rc = main(["data", "textures", "--out", str(out), "--num", "3", "--seed", "4", "--split", "val", "--frames", "5",
               "--size", "24x32", "--channels", "3", "--layers", "2", "--noise", "0.01", "--truth", "--quiet"])
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}: 3 sequences x 5 frames of 24x32, 3 channel(s), 2 layer(s), seed 4, split val")
    clips = load_clip_file(out)
    assert clips.shape == (3, 5, 3, 24, 32) and clips.dtype == np.uint8
    opts = dict(num_frames=5, size=(24, 32), channels=3, layers=2, noise=0.01)
    g = tx.generate(4, range(3), split="val", with_truth=True, **opts)
    np.testing.assert_array_equal(clips, g["frames"])
    assert len(ClipFileDataset(out)) == 3 and not ClipFileDataset(out).with_truth
    item = TexturesFileDataset(out)[2]
    for key in ("masks", "flow", "occlusion"):
        np.testing.assert_array_equal(item[key].numpy(), g[key][2])
    meta = read_meta(out)
    assert meta["photos"] == ["camera", "chelsea", "gravel", "retina"] and meta["layers"] == [2, 2]
    before = out.read_bytes()
    assert main(["data", "textures", "--out", str(out), "--num", "2", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"stae: error: {out}: already exists (use --force to overwrite)"
    assert out.read_bytes() == before
    assert main(["data", "textures", "--out", str(out), "--num", "1", "--frames", "3", "--quiet", "--force"]) == 0
    assert load_clip_file(out).shape == (1, 3, 1, 64, 64)


@pytest.mark.parametrize("flags, message", [
    (["--channels", "2"], "--channels: channels must be 1 (grey) or 3 (colour), got 2"),
    (["--layers", "3:1"], "--layers: layers must satisfy 0 <= lo <= hi (finite), got (3, 1)"),
    (["--num", "many"], "--num: expected an integer, got 'many'"),
    (["--split", "dev"], "--split: expected one of train, val, test, got 'dev'"),
    (["--speed", "fast"], "--speed: expected a number, got 'fast'"),
    (["--still", "2"], "--still: still must be a probability in [0, 1], got 2.0"),
    (["--still-layers", "-1"], "--still-layers: still_layers must be a probability in [0, 1], got -1.0"),
])
def test_cli_bad_options_one_line(tmp_path, capsys, flags, message):
    out = tmp_path / "x.npz"
    assert main(["data", "textures", "--out", str(out), "--quiet"] + flags) == 2
    err = capsys.readouterr().err
    assert err == f"stae: error: {message}\n"
    assert not out.exists()


def test_still_camera_has_exactly_zero_background_flow():
    g = tx.generate(5, range(6), with_truth=True, still=1.0, **SMALL)
    bg = g["owner"][:, 1:] == 0  # background pixels of frame t+1
    assert bg.any() and (g["flow"][:, :, 0][bg] == 0).all() and (g["flow"][:, :, 1][bg] == 0).all()
    np.testing.assert_array_equal(g["to_object"][:, 1:, 0], g["to_object"][:, :-1, 0])
    both = bg & (g["owner"][:, :-1] == 0)  # background in frames t and t+1: the same pixel values
    np.testing.assert_array_equal(g["frames"][:, 1:, 0][both], g["frames"][:, :-1, 0][both])
    assert np.abs(g["flow"]).max() > 0.1  # the layers still move
    # Nothing moves: every frame is the first, the flow is zero everywhere, nothing is occluded.
    g = tx.generate(5, range(6), with_truth=True, still=1.0, still_layers=1.0, **SMALL)
    assert (g["flow"] == 0).all() and not g["occlusion"].any()
    np.testing.assert_array_equal(g["frames"], np.repeat(g["frames"][:, :1], SMALL["num_frames"], axis=1))


def test_still_draws_leave_the_other_sequences_unchanged():
    """The still draws come from their own generator: a sequence none of whose slots is drawn
    still is the one of the generator without the options (the documented draw order)."""
    n, layers = 40, (1, 3)
    base = tx.generate(3, range(n), with_truth=True, layers=layers, **SMALL)
    mixed = tx.generate(3, range(n), with_truth=True, layers=layers, still=0.3, still_layers=0.2, **SMALL)
    n_still_cam = 0
    for i in range(n):
        u = np.random.default_rng([3, i, 2]).random(1 + layers[1])
        n_fg = int((base["photo_ids"][i] >= 0).sum()) - 1
        still = np.r_[u[0] < 0.3, u[1:1 + n_fg] < 0.2]
        n_still_cam += still[0]
        np.testing.assert_array_equal(mixed["photo_ids"][i], base["photo_ids"][i])
        for slot in range(1 + n_fg):
            moved = not np.array_equal(mixed["to_object"][i, 1:, slot], mixed["to_object"][i, :-1, slot])
            assert moved != still[slot]
        if not still.any():
            for key in base:
                np.testing.assert_array_equal(mixed[key][i], base[key][i])
    assert 0 < n_still_cam < n
