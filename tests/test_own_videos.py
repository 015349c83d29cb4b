"""docs/own-videos.md's toy data (scripts/make_toy_videos.py) and `stae evaluate --split all`
on a folder of held-out videos."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from stae.checkpoint import save_model
from stae.cli import main
from stae.data.video import VideoClipDataset, find_videos, read_frames
from stae.model import build_model
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_toy_videos", ROOT / "scripts" / "make_toy_videos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    frames, masks = module.render(rng, drift=False)
    module.write_avi(out / "heldout" / "still" / "still_05.avi", frames)
    for cls in ("drift", "still"):
        module.write_avi(out / "train" / cls / f"{cls}_01.avi", module.render(rng, drift=cls == "drift")[0])
    return out, frames, masks


def test_toy_videos_in_hmdb_layout_decode_close_to_what_was_drawn(toy):
    root, frames, masks = toy
    assert [p.relative_to(root).as_posix() for p in find_videos(root / "train")] == \
        ["train/drift/drift_01.avi", "train/still/still_01.avi"]
    decoded = read_frames(root / "heldout" / "still" / "still_05.avi", 0, len(frames), grayscale=True)[:, 0]
    psnr = 10 * np.log10(255 ** 2 / np.mean((decoded.astype(float) - frames) ** 2))
    assert decoded.shape == frames.shape and psnr > 35  # no compression artefacts to learn
    # The mask is the disc: bright where the mask is 1.
    assert frames[0][masks[0] == 1].mean() > frames[0][masks[0] == 0].mean() + 40
    assert set(np.unique(masks).tolist()) == {0, 1}


def test_evaluate_split_all_scores_every_held_out_video(toy, tmp_path, capsys):
    root, frames, _ = toy
    assert len(VideoClipDataset(root / "heldout", clip_len=11, split="all")) == len(frames) // 11
    ckpt = save_model(tmp_path / "m.safetensors", build_model(tiny_config()))
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(ckpt), "--data", str(root / "heldout"), "--split", "all", "--no-dis",
                 "--size", "32", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"3 clips of {root / 'heldout'}")
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"model", "copy_last"}
    # The default split (val) of a single video folder holds no video: a clear error.
    assert main(["evaluate", str(ckpt), "--data", str(root / "heldout"), "--no-dis", "--out", str(out)]) == 2
    assert "use split='all'" in capsys.readouterr().err
