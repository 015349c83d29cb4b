"""Real videos: PyAV round trips (mp4/libx264, avi/mpeg4, mkv/ffv1 exact, webm/vp9), frame
folders (png exact), clip sampling, resizing, split by video, and bad inputs."""

import warnings

import av
import numpy as np
import pytest
from PIL import Image

from stae.data import video as vd
from stae.errors import StaeError

H, W = 48, 64


def pattern(n, h=H, w=W, phase=0):
    """A bright square moving right 2 px per frame, and a band whose grey level rises."""
    fr = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        x = 4 + 2 * (t + phase)
        fr[t, 8:24, x:x + 16] = 200
        fr[t, 30:40, :] = 40 + 5 * t
    return fr


def encode(path, frames, codec, pix_fmt, options=None):
    c = av.open(str(path), "w")
    s = c.add_stream(codec, rate=25)
    s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
    if options:
        s.options = options
    for f in frames:
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()


def frame_folder(path, frames):
    path.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(path / f"{i + 1}.png")  # 1.png ... 10.png ...: natural order matters


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    fr = pattern(20)
    (root / "walk").mkdir()
    (root / "jump").mkdir()
    encode(root / "walk" / "a.mp4", fr, "libx264", "yuv420p", {"crf": "0"})
    encode(root / "walk" / "b.mkv", fr, "ffv1", "gray")
    encode(root / "jump" / "c.avi", fr, "mpeg4", "yuv420p", {"qscale": "2"})
    encode(root / "jump" / "d.webm", fr, "libvpx-vp9", "yuv420p", {"crf": "10"})
    frame_folder(root / "jump" / "e_frames", fr)
    (root / "jump" / "notes.txt").write_text("ignored")
    return root, fr


def test_find_videos_recursive(tree):
    root, _ = tree
    found = [p.relative_to(root).as_posix() for p in vd.find_videos(root)]
    assert found == ["jump/c.avi", "jump/d.webm", "jump/e_frames", "walk/a.mp4", "walk/b.mkv"]
    assert vd.find_videos(root / "walk" / "b.mkv") == [root / "walk" / "b.mkv"]
    assert vd.find_videos(root / "jump" / "e_frames") == [root / "jump" / "e_frames"]


@pytest.mark.parametrize("name,tol", [("walk/b.mkv", 0), ("jump/e_frames", 0), ("walk/a.mp4", 3), ("jump/c.avi", 40), ("jump/d.webm", 40)])
def test_round_trip(tree, name, tol):
    root, fr = tree
    info = vd.probe(root / name)
    assert info.num_frames == 20
    seek = vd.read_frames(root / name, 7, 5, stride=2, info=info)  # seeks (video) via the index
    seq = vd.read_frames(root / name, 7, 5, stride=2)  # decodes sequentially
    assert seek.shape == (5, 1, H, W) and seek.dtype == np.uint8
    np.testing.assert_array_equal(seek, seq)
    err = np.abs(seek[:, 0].astype(int) - fr[7:16:2])
    assert err.max() <= tol and (tol > 0 or err.max() == 0)
    if tol:  # lossy codecs: small errors, and each decoded frame is nearest to the right source frame
        assert err.mean() < 3
        dist = np.abs(seek[:, 0, None].astype(int) - fr[None].astype(int)).mean(axis=(2, 3))  # (5, 20)
        assert dist.argmin(axis=1).tolist() == [7, 9, 11, 13, 15]
    streamed = np.stack(list(vd.iter_frames(root / name)))
    assert streamed.shape == (20, 1, H, W)
    assert np.abs(streamed[:, 0].astype(int) - fr).max() <= tol


def test_rgb_resize_and_crop(tree):
    root, fr = tree
    rgb = vd.read_frames(root / "jump" / "e_frames", 0, 2, grayscale=False)
    assert rgb.shape == (2, 3, H, W)
    np.testing.assert_array_equal(rgb[:, 0], fr[:2])
    np.testing.assert_array_equal(rgb[:, 1], fr[:2])
    # center: scale 48x64 -> 32x43 (covering 32x32), keep the middle 32 columns.
    c = vd.read_frames(root / "walk" / "b.mkv", 0, 1, size=(32, 32), crop="center")
    ref = np.asarray(Image.fromarray(fr[0]).resize((43, 32), Image.Resampling.BILINEAR))[:, 5:37]
    np.testing.assert_array_equal(c[0, 0], ref)
    r = vd.read_frames(root / "walk" / "b.mkv", 0, 1, size=(24, 40), crop="resize")
    np.testing.assert_array_equal(r[0, 0], np.asarray(Image.fromarray(fr[0]).resize((40, 24), Image.Resampling.BILINEAR)))
    rgb_v = vd.read_frames(root / "walk" / "a.mp4", 3, 1, size=(32, 32), grayscale=False)
    assert rgb_v.shape == (1, 3, 32, 32)


def test_clip_dataset_and_split_by_video(tree):
    root, fr = tree
    ds = vd.VideoClipDataset(root, clip_len=4, stride=2, size=None, split="all")
    # span 7 frames, non-overlapping: starts 0, 7 (14 would need frame 20) -> 2 clips per video
    assert len(ds.videos) == 5 and len(ds) == 10
    item = ds[ds.clips.index((ds.videos.index(next(v for v in ds.videos if v.path.name == "b.mkv")), 7))]
    assert item["clip"].shape == (4, 1, H, W)
    np.testing.assert_array_equal((item["clip"][:, 0].numpy() * 255).round().astype(np.uint8), fr[7:14:2])
    ov = vd.VideoClipDataset(root / "walk" / "b.mkv", clip_len=3, step=1, split="all", size=(32, 32))
    assert len(ov) == 18 and ov[0]["clip"].shape == (3, 1, 32, 32) and float(ov[0]["clip"].max()) <= 1.0
    tr = vd.VideoClipDataset(root, clip_len=4, split="train", val_fraction=0.4, seed=1)
    va = vd.VideoClipDataset(root, clip_len=4, split="val", val_fraction=0.4, seed=1)
    tv, vv = {v.path for v in tr.videos}, {v.path for v in va.videos}
    assert len(vv) == 2 and len(tv) == 3 and not tv & vv and tv | vv == set(vd.find_videos(root))
    again = vd.VideoClipDataset(root, clip_len=4, split="val", val_fraction=0.4, seed=1)
    assert {v.path for v in again.videos} == vv
    other = {frozenset(v.path for v in vd.VideoClipDataset(root, clip_len=4, split="val", val_fraction=0.4, seed=s).videos)
             for s in range(6)}
    assert len(other) > 1  # the seed matters
    # One video is a dataset too (issue 18): its clips are split in time, the last ones for val.
    one = root / "walk" / "b.mkv"
    tr1, va1 = (vd.VideoClipDataset(one, clip_len=4, step=4, split=s, val_fraction=0.25) for s in ("train", "val"))
    assert tr1.clips + va1.clips == vd.VideoClipDataset(one, clip_len=4, step=4, split="all").clips
    assert len(va1) == 1 and len(tr1) == 4
    with pytest.raises(StaeError, match="one video"):
        vd.VideoClipDataset(one, clip_len=4, split="val", val_fraction=0.0)


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    fr = pattern(12)
    encode(root / "good.mkv", fr, "ffv1", "gray")
    encode(root / "short.mkv", fr[:3], "ffv1", "gray")
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    encode(root / "full.mp4", fr, "libx264", "yuv420p")
    data = (root / "full.mp4").read_bytes()
    (root / "trunc.mp4").write_bytes(data[: len(data) // 2])
    (root / "full.mp4").unlink()
    return root


def test_bad_inputs_name_the_file(bad, tmp_path):
    with pytest.raises(StaeError, match="nowhere: no such file or directory"):
        vd.VideoClipDataset(tmp_path / "nowhere", clip_len=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StaeError, match="empty: no videos"):
        vd.find_videos(tmp_path / "empty")
    with pytest.raises(StaeError, match="corrupt.mp4: cannot open video"):
        vd.probe(bad / "corrupt.mp4")
    with pytest.raises(StaeError, match="trunc.mp4: "):
        vd.probe(bad / "trunc.mp4")
    with pytest.raises(StaeError, match=r"short.mkv: 3 frames, shorter than one clip of 5 frames"):
        vd.VideoClipDataset(bad / "short.mkv", clip_len=5, split="all")
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    with pytest.raises(StaeError, match=r"clip.gif: unsupported extension '.gif'"):
        vd.find_videos(tmp_path / "clip.gif")
    with pytest.raises(StaeError, match=r"clip.gif: unsupported extension"):
        vd.read_frames(tmp_path / "clip.gif", 0, 1)
    with pytest.raises(StaeError, match=r"good.mkv: decoded only 2 of the 4 frames"):
        vd.read_frames(bad / "good.mkv", 10, 4)
    with pytest.raises(StaeError, match="good.mkv: 12 frames, too short"):
        vd.read_frames(bad / "good.mkv", 10, 4, info=vd.probe(bad / "good.mkv"))
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "0.png").write_bytes(b"not a png")
    with pytest.raises(StaeError, match="0.png: cannot read image frame"):
        vd.read_frames(tmp_path / "frames", 0, 1)
    # A directory with bad videos fails on the first one, or skips them on request.
    with pytest.raises(StaeError, match="corrupt.mp4"):
        vd.VideoClipDataset(bad, clip_len=5, split="all")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = vd.VideoClipDataset(bad, clip_len=5, split="all", skip_bad=True)
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 3 and all(m.count("\n") == 0 for m in msgs)
    assert {m.split(": ")[0].split("/")[-1] for m in msgs} == {"corrupt.mp4", "short.mkv", "trunc.mp4"}
    assert [v.path.name for v in ds.videos] == ["good.mkv"] and len(ds) == 2
