"""docs/own-videos.md's toy data (scripts/make_toy_videos.py) and `stae evaluate --split all`
on a folder of held-out videos."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stae.weights import save_model
from stae.cli import main
from stae.data.video import VideoClipDataset, find_videos, read_frames
from stae.model import build_model
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The guide's toy folder, written by its script (run as a script, as the guide does)."""
    out = tmp_path_factory.mktemp("toy") / "toy-videos"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_toy_videos.py"), str(out)], check=True,
                   capture_output=True, timeout=300)
    masks = np.stack([np.asarray(Image.open(p)) for p in sorted((out / "masks" / "still_05").glob("*.png"))])
    frames = read_frames(out / "heldout" / "still" / "still_05.avi", 0, len(masks), grayscale=True)[:, 0]
    return out, frames, masks


def test_toy_videos_in_hmdb_layout(toy):
    root, frames, masks = toy
    assert [p.relative_to(root).as_posix() for p in find_videos(root / "train")] == \
        [f"train/{c}/{c}_0{i}.avi" for c in ("drift", "still") for i in range(1, 5)]
    assert frames.shape == masks.shape and set(np.unique(masks).tolist()) == {0, 1}
    # The mask is the disc: bright where the mask is 1.
    assert frames[0][masks[0] == 1].mean() > frames[0][masks[0] == 0].mean() + 40


def test_evaluate_split_all_scores_every_held_out_video(toy, tmp_path, capsys):
    root, frames, _ = toy
    assert len(VideoClipDataset(root / "heldout", clip_len=11, split="all")) == 2 * (len(frames) // 11)
    ckpt = save_model(tmp_path / "m.safetensors", build_model(tiny_config()))
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(ckpt), "--data", str(root / "heldout"), "--split", "all", "--no-dis",
                 "--size", "32", "--out", str(out)]) == 0
    windows = len(frames) - 10  # every window of 11 frames: 10 in, the next out
    printed = capsys.readouterr().out
    assert f"drift_05.avi: {windows} windows" in printed and f"still_05.avi: {windows} windows" in printed
    report = json.loads(out.read_text())
    assert len(report["clips"]) == 2
    assert all(set(c["results"]) == {"model", "copy_last"} for c in report["clips"].values())
    # A folder holding one video is scored whole by default (no split of one video into none).
    assert main(["evaluate", str(ckpt), "--data", str(root / "heldout" / "still"), "--no-dis", "--size", "32",
                 "--out", str(tmp_path / "one.json")]) == 0
    assert f"still_05.avi: {windows} windows" in capsys.readouterr().out
