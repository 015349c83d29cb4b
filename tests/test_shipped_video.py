"""The real-video model shipped inside the package (issue 13): `video-gray64` loads by name,
carries its config and training summary, and `stae predict` writes the MP4/GIF panels."""

import json

import numpy as np
import pytest

from stae.cli import main
from stae.weights import load_model, metadata_json, read_metadata, shipped_models

pytestmark = pytest.mark.skipif("video-gray64" not in shipped_models(),
                                reason="src/stae/weights/video-gray64.safetensors not shipped yet "
                                       "(scripts/reproduce.py --stages ship_video)")


def test_loads_by_name_with_its_config_and_summary():
    model = load_model("video-gray64")
    cfg = model.config
    assert cfg.head == "image" and cfg.image_mask and cfg.image_residual and cfg.in_channels == 1 and cfg.block_matching
    # vanilla + one D output channel + the memory's three block-matching inputs (3 x 4 gates x 45 x 7 x 7)
    assert sum(p.numel() for p in model.parameters()) == 705_220 + 26_460
    assert metadata_json("video-gray64", "stae_training")["sequences_seen"] > 0
    assert "source: mix" in read_metadata("video-gray64")["stae_run_config"]


def test_predicts_the_textures_test_split_no_worse_than_copying():
    from stae.evaluate import evaluate
    from stae.video_eval import texture_test_set

    res = evaluate(load_model("video-gray64"), texture_test_set(8, 11), baselines=("copy_last",),
                   binary=False)["results"]
    assert res["model"]["l2"] < res["copy_last"]["l2"]


def test_predict_writes_panels_for_a_video(tmp_path):
    av = pytest.importorskip("av")
    video = tmp_path / "in.mp4"
    c = av.open(str(video), "w")
    s = c.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
    for t in range(12):
        f = np.full((64, 96), 60, np.uint8)
        f[16:40, 10 + 2 * t:34 + 2 * t] = 200
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    out = tmp_path / "pred"
    assert main(["predict", "video-gray64", str(video), "--out", str(out)]) == 0
    assert {"predict.mp4", "predict.gif", "figure.png", "predict.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "predict.json").read_text())["frames"] == 12
