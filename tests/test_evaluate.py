"""`stae evaluate`: metrics of the model and baselines on the same frames, JSON fields, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stae.weights import save_model
from stae.cli import main
from stae.errors import StaeError
from stae.evaluate import evaluate, format_table
from tests.helpers import ListDataset, moving_square, tiny_model, write_tiny_clips


def test_static_clip_copy_last_is_exact():
    pytest.importorskip("cv2")  # the DIS baseline (stae[baselines])
    ds = ListDataset([{"clip": torch.rand(1, 1, 16, 16).expand(6, 1, 16, 16).clone()} for _ in range(2)])
    rep = evaluate(tiny_model(), ds, context=4, baselines=("copy_last", "dis"))
    cl = rep["results"]["copy_last"]
    assert cl["l2"] == 0 and cl["gradient_l2"] == 0 and cl["mse_per_frame"] == 0 and cl["mae_per_frame"] == 0
    assert cl["ssim"] == pytest.approx(1.0)
    assert rep["results"]["dis"]["l2"] < 1e-4  # DIS finds ~zero flow on a static frame
    assert "bce" not in cl and rep["protocol"]["binary"] is False
    assert rep["protocol"]["predicted_frames"] == 2 and "epe" not in cl


def test_moving_square_metrics_and_epe():
    ds = moving_square()
    model = tiny_model()
    rep = evaluate(model, ds, context=4, baselines=("copy_last",))
    res, p = rep["results"], rep["protocol"]
    assert p["binary"] is True and p["frames"] == "feed frames 0..3, predict frame 4"
    assert "backward" in p["flow_convention"]
    # copy-last: a 4x4 square shifted by 1 px differs in 8 of 256 pixels
    assert res["copy_last"]["l2"] == pytest.approx(8 / 256)
    assert res["copy_last"]["mse_per_frame"] == pytest.approx(8.0)
    assert res["copy_last"]["mae_per_frame"] == pytest.approx(8.0)
    # zero flow against a true flow of 1 px on every digit pixel
    assert res["copy_last"]["epe"] == pytest.approx(1.0)
    # Theta's 1x1 conv starts at zero: the untrained model predicts zero flow too
    assert res["model"]["epe"] == pytest.approx(1.0)
    # BCE of copy-last: 8 wrong pixels of 256 cost -log(1e-7) nats each
    assert res["copy_last"]["bce"] == pytest.approx(8 / 256 * -math.log(1e-7), rel=1e-6)
    assert set(res["model"]) == {"bce", "l2", "gradient_l2", "psnr", "ssim", "mse_per_frame", "mae_per_frame", "epe"}
    assert "copy_last" in format_table(rep) and "epe" in format_table(rep)


def test_dis_baseline_on_moving_square():
    pytest.importorskip("cv2")  # the DIS baseline (stae[baselines])
    ds = moving_square(n=2, size=32, dx=2, binary=False)
    rep = evaluate(tiny_model(), ds, context=4, baselines=("copy_last", "dis"))
    res = rep["results"]
    assert res["dis"]["l2"] < res["copy_last"]["l2"]  # constant velocity beats copying
    assert res["dis"]["epe"] < res["copy_last"]["epe"] == pytest.approx(2.0)


def test_rollout_mode():
    pytest.importorskip("cv2")  # the DIS baseline (stae[baselines])
    ds = ListDataset([{"clip": torch.rand(1, 1, 16, 16).expand(8, 1, 16, 16).clone()} for _ in range(3)])
    rep = evaluate(tiny_model(), ds, context=4, mode="rollout", horizon=3, batch_size=2, baselines=("copy_last", "dis"))
    assert rep["protocol"]["predicted_frames"] == 9 and rep["protocol"]["horizon"] == 3
    assert rep["results"]["copy_last"]["l2"] == 0
    with pytest.raises(StaeError, match="too short"):
        evaluate(tiny_model(), ds, context=4, mode="rollout", horizon=5)


def test_cli_writes_json_and_table(tmp_path, capsys):
    pytest.importorskip("cv2")  # the DIS baseline (stae[baselines])
    data = write_tiny_clips(tmp_path / "clips.npy", n=5)
    ckpt = save_model(tmp_path / "m.safetensors", tiny_model())
    out = tmp_path / "e.json"
    assert main(["evaluate", str(ckpt), "--data", str(data), "--context", "4", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["protocol"]["clips"] == 5 and rep["protocol"]["context"] == 4
    assert set(rep["results"]) == {"model", "copy_last", "dis"}
    assert rep["model_config"]["encoder_channels"] == [4]
    printed = capsys.readouterr().out
    assert "copy_last" in printed and "wrote" in printed
    # bad input: exit 2, one line, nothing written
    out2 = tmp_path / "e2.json"
    assert main(["evaluate", str(tmp_path / "missing.safetensors"), "--data", str(data), "--out", str(out2)]) == 2
    assert main(["evaluate", str(ckpt), "--data", str(tmp_path / "nope.npy"), "--out", str(out2)]) == 2
    assert main(["evaluate", str(ckpt), "--data", str(data), "--context", "9", "--out", str(out2)]) == 2
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"\x00" * 64)
    assert main(["evaluate", str(foreign), "--data", str(data), "--out", str(out2)]) == 2
    assert not out2.exists()
    err = capsys.readouterr().err
    assert err.count("stae: error:") == 4


def test_unavailable_device_is_one_error_line(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from stae.cli import main
    assert main(["evaluate", "vanilla-mmnist", "--device", "cuda", "--limit", "1"]) == 2
    assert capsys.readouterr().err.strip() == "stae: error: --device cuda: not available on this machine"
