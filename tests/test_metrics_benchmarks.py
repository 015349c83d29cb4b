"""The benchmarks' own metrics (docs/metrics.md): OpenSTL's MSE / MAE / SSIM / PSNR and Video
Pixel Networks' nats per frame, pinned to hand computations and, where installed, to
scikit-image called as OpenSTL calls it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stae import metrics as M
from stae.errors import StaeError

C1, C2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2  # K1, K2 times OpenSTL's data range of 2
D = torch.float64  # exact expectations need inputs that are exact (0.1 is not in float32)


def _ssim_one_window(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of one 7x7 window by hand: means, sample (co)variances over 49 pixels."""
    mx, my = x.mean(), y.mean()
    vx = ((x - mx) ** 2).sum() / 48
    vy = ((y - my) ** 2).sum() / 48
    vxy = ((x - mx) * (y - my)).sum() / 48
    return (2 * mx * my + C1) * (2 * vxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))


def test_mse_mae_sum_over_channels_and_pixels_mean_over_frames_unclipped():
    target = torch.zeros(2, 3, 2, 4, 4)  # 2 clips, 3 frames, 2 channels, 4x4
    pred = target + 0.1
    assert M.mse_per_frame(pred, target) == pytest.approx(32 * 0.01)  # 2 x 16 pixels
    assert M.mae_per_frame(pred, target) == pytest.approx(32 * 0.1)
    assert M.mse_per_frame(target, target) == 0 and M.mae_per_frame(target, target) == 0
    # not clipped: a prediction of 1.5 against 1 costs 0.25 per pixel
    one = torch.ones(1, 1, 1, 2, 2)
    assert M.mse_per_frame(one * 1.5, one) == pytest.approx(4 * 0.25)
    assert M.mae_per_frame(one * 1.5, one) == pytest.approx(4 * 0.5)
    # mean over frames of per-frame sums: frames with errors 0 and 0.2 on 16 pixels
    two = torch.zeros(1, 2, 1, 4, 4)
    shifted = two.clone()
    shifted[0, 1] = 0.2
    assert M.mse_per_frame(shifted, two) == pytest.approx(16 * 0.04 / 2)


def test_openstl_ssim_identical_is_one_and_constant_frames_by_formula():
    x = torch.rand(2, 3, 1, 16, 16)
    assert M.openstl_ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    # constant frames a and b: no variance, SSIM = (2ab + C1) / (a^2 + b^2 + C1) everywhere
    a, b = 0.2, 0.7
    got = M.openstl_ssim(torch.full((1, 1, 9, 9), a, dtype=D), torch.full((1, 1, 9, 9), b, dtype=D))
    assert got == pytest.approx((2 * a * b + C1) / (a * a + b * b + C1), rel=1e-12)


def test_openstl_ssim_hand_worked_7x7():
    # One 7x7 frame is one window. pred: a single bright pixel; target: all zero.
    x = np.zeros((7, 7))
    x[3, 2] = 1.0
    y = np.zeros((7, 7))
    got = M.openstl_ssim(torch.tensor(x)[None], torch.tensor(y)[None])
    # mu_x = 1/49, var_x = (49/48)(1/49 - 1/49^2) = 1/49, var_y = cov = 0
    expect = C1 * C2 / ((1 / 49**2 + C1) * (1 / 49 + C2))
    assert expect == pytest.approx(0.07346, abs=1e-6)
    assert got == pytest.approx(expect, rel=1e-12)
    # the same pixel at half brightness in the target: cov = 0.5/49, var_y = 0.25/49
    y[3, 2] = 0.5
    got = M.openstl_ssim(torch.tensor(x)[None], torch.tensor(y)[None])
    expect = (2 * 0.5 / 49**2 + C1) * (2 * 0.5 / 49 + C2) / ((1.25 / 49**2 + C1) * (1.25 / 49 + C2))
    assert got == pytest.approx(expect, rel=1e-12)
    assert got == pytest.approx(_ssim_one_window(x, y), rel=1e-12)


def test_openstl_ssim_crops_the_border_and_averages_windows():
    # 8x9 frame: valid windows at 2 x 3 positions, each scored by hand, then averaged.
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 9, generator=g, dtype=torch.float64), torch.rand(8, 9, generator=g, dtype=torch.float64)
    by_hand = np.mean([_ssim_one_window(x[i:i + 7, j:j + 7].numpy(), y[i:i + 7, j:j + 7].numpy())
                       for i in range(2) for j in range(3)])
    assert M.openstl_ssim(x[None], y[None]) == pytest.approx(by_hand, rel=1e-12)


def test_openstl_ssim_clips_pred_not_target_and_averages_channels_then_frames():
    g = torch.Generator().manual_seed(2)
    pred = torch.rand(2, 3, 8, 8, generator=g) * 1.6 - 0.3  # 2 frames of 3 channels, out of range
    target = torch.rand(2, 3, 8, 8, generator=g)
    assert M.openstl_ssim(pred, target) == pytest.approx(M.openstl_ssim(pred.clamp(0, 1), target), abs=0)
    per = M.openstl_ssim_per_frame(pred, target)
    assert per.shape == (2,)
    chan = [[M.openstl_ssim(pred[f, c][None], target[f, c][None]) for c in range(3)] for f in range(2)]
    assert per.tolist() == pytest.approx([sum(r) / 3 for r in chan], rel=1e-12)
    assert M.openstl_ssim(pred, target) == pytest.approx(float(per.mean()), rel=1e-12)


def test_openstl_ssim_matches_scikit_image_called_as_openstl_does():
    skm = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(3)
    pred = torch.rand(2, 3, 2, 16, 12, generator=g) * 1.2 - 0.1  # (B, T, C, H, W), partly out of [0, 1]
    target = torch.rand(2, 3, 2, 16, 12, generator=g)
    p, t = np.clip(pred.numpy(), 0, 1), target.numpy()
    # OpenSTL: per clip and frame, (C, H, W) swapped to (W, H, C), channels last; data_range=2
    # is what its scikit-image (<= 0.19) guessed for float images (modern skimage needs it given)
    ref = np.mean([skm.structural_similarity(p[b, f].swapaxes(0, 2), t[b, f].swapaxes(0, 2),
                                             channel_axis=-1, data_range=2)
                   for b in range(2) for f in range(3)])
    assert M.openstl_ssim(pred, target) == pytest.approx(ref, abs=1e-6)  # skimage filters in float32


def test_openstl_psnr_by_formula():
    t = torch.zeros(1, 2, 1, 4, 4, dtype=D)
    assert M.openstl_psnr(t + 0.1, t) == pytest.approx(20.0, rel=1e-12)  # -10 log10(0.01)
    # mean of per-frame PSNRs, not PSNR of the mean MSE: 20 dB and 40 dB -> 30
    p = t.clone()
    p[0, 0] = 0.1
    p[0, 1] = 0.01
    assert M.openstl_psnr(p, t) == pytest.approx(30.0, rel=1e-12)
    # pred clipped to [0, 1]: -0.5 scores as 0 against 0.1
    assert M.openstl_psnr(torch.full((1, 4, 4), -0.5), torch.full((1, 4, 4), 0.1, dtype=D)) == pytest.approx(20.0)
    # a perfect frame is +inf, and so is the mean (OpenSTL's convention)
    assert M.openstl_psnr(torch.full((1, 4, 4), 1.5), torch.ones(1, 4, 4)) == math.inf
    assert M.openstl_psnr(p, p) == math.inf


def test_openstl_psnr_matches_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(4)
    pred, target = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64), torch.rand(3, 1, 8, 8, generator=g,
                                                                                           dtype=torch.float64)
    ref = np.mean([skm.peak_signal_noise_ratio(target[f].numpy(), pred[f].numpy(), data_range=1) for f in range(3)])
    assert M.openstl_psnr(pred, target) == pytest.approx(ref, rel=1e-12)


def test_vpn_nats_per_frame():
    # a constant 0.5 guess costs log 2 nats per pixel: 4096 log 2 on a 64x64 frame
    target = (torch.rand(2, 10, 1, 64, 64) > 0.8).float()
    assert M.vpn_nats_per_frame(torch.full_like(target, 0.5), target) == pytest.approx(4096 * math.log(2), rel=1e-12)
    # grey targets are the probabilities of a stochastic binarisation: the expected nats
    t = torch.tensor([[[0.5, 0.25]]], dtype=D)
    p = torch.tensor([[[0.8, 0.3]]], dtype=D)
    expected = -(0.5 * math.log(0.8) + 0.5 * math.log(0.2)) - (0.25 * math.log(0.3) + 0.75 * math.log(0.7))
    assert M.vpn_nats_per_frame(p, t) == pytest.approx(expected, rel=1e-12)
    # ... which is the mean over binarisations drawn pixel by pixel (Monte Carlo, 200,000 draws)
    g = torch.Generator().manual_seed(0)
    bits = (torch.rand(200_000, 1, 1, 2, generator=g, dtype=D) < t).to(D)  # 200,000 frames
    assert M.vpn_nats_per_frame(p.expand_as(bits), bits) == pytest.approx(expected, rel=5e-3)
    # the true grey frame scores its own entropy (VPN's "lower bound"), and nothing scores less
    entropy = -(0.5 * math.log(0.5) * 2) - (0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert M.vpn_nats_per_frame(t, t) == pytest.approx(entropy, rel=1e-6)
    assert M.vpn_nats_per_frame(p, t) > M.vpn_nats_per_frame(t, t)
    # certain and wrong: clamped to 1e-7 -> -log(1e-7) nats; certain and right: ~1e-7 nats
    assert M.vpn_nats_per_frame(torch.zeros(1, 1, 1), torch.ones(1, 1, 1)) == pytest.approx(-math.log(1e-7), rel=1e-9)
    assert M.vpn_nats_per_frame(torch.ones(1, 1, 1), torch.ones(1, 1, 1)) == pytest.approx(1e-7, rel=1e-3)
    # summed over a frame's pixels, averaged over frames: frames of 0 and 2 wrong pixels -> 1 per frame
    tt = torch.zeros(2, 1, 2, 2)
    pp = tt.clone()
    pp[1, 0, 0] = 1.0
    assert M.vpn_nats_per_frame(pp, tt) == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_metrics_reject_bad_shapes():
    with pytest.raises(StaeError, match="differ in shape"):
        M.openstl_ssim(torch.zeros(1, 8, 8), torch.zeros(1, 8, 9))
    with pytest.raises(StaeError, match="window 7"):
        M.openstl_ssim(torch.zeros(1, 6, 8), torch.zeros(1, 6, 8))
    with pytest.raises(StaeError, match=r"\(\.\.\., C, H, W\)"):
        M.openstl_psnr(torch.zeros(8, 8), torch.zeros(8, 8))
    with pytest.raises(StaeError, match="differ in shape"):
        M.vpn_nats_per_frame(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))


# --- stae evaluate --mode rollout prints them ------------------------------------------------

class _Offset(torch.nn.Module):
    """A stand-in model whose rollout repeats the last frame plus 0.5 (out of [0, 1])."""

    def rollout(self, clip, horizon):
        from types import SimpleNamespace
        return SimpleNamespace(frames=clip[:, -1:].expand(-1, horizon, -1, -1, -1) + 0.5)


def test_evaluate_rollout_reports_the_benchmark_metrics():
    from stae.evaluate import evaluate, format_table
    from tests.helpers import ListDataset, tiny_model

    ds = ListDataset([{"clip": torch.rand(1, 1, 16, 16).expand(8, 1, 16, 16).clone()} for _ in range(3)])
    rep = evaluate(tiny_model(), ds, context=4, mode="rollout", horizon=3, batch_size=2, baselines=("copy_last",))
    cl, model = rep["results"]["copy_last"], rep["results"]["model"]
    assert cl["ssim_openstl"] == pytest.approx(1.0) and cl["mse_per_frame"] == 0
    assert cl["psnr_openstl"] == math.inf  # static clips: copy-last is perfect, as OpenSTL scores it
    assert {"ssim_openstl", "psnr_openstl", "ssim", "mse_per_frame", "mae_per_frame"} <= set(model)
    assert "vpn_nats_per_frame" not in model  # float data, linear output: no probabilities
    table = format_table(rep)
    assert "ssim_openstl ^" in table and "psnr_openstl ^" in table and "docs/metrics.md" in table
    # next mode is unchanged
    rep = evaluate(tiny_model(), ds, context=4, mode="next", baselines=("copy_last",))
    assert "ssim_openstl" not in rep["results"]["model"]


def test_evaluate_rollout_mse_is_unclipped_ssim_psnr_clipped():
    from stae.evaluate import evaluate
    from tests.helpers import ListDataset

    clip = torch.full((6, 1, 16, 16), 0.75)
    rep = evaluate(_Offset(), ListDataset([{"clip": clip}]), context=3, mode="rollout", horizon=3, baselines=())
    res = rep["results"]["model"]
    assert res["mse_per_frame"] == pytest.approx(256 * 0.25)  # 1.25 vs 0.75, not clipped
    assert res["mae_per_frame"] == pytest.approx(256 * 0.5)
    assert res["psnr_openstl"] == pytest.approx(-10 * math.log10(0.0625))  # clipped to 1 vs 0.75


def test_evaluate_rollout_vpn_nats_of_a_sigmoid_model_on_binary_data():
    from stae.evaluate import evaluate
    from tests.helpers import moving_square, tiny_model

    ds = moving_square(n=2, t=8)
    model = tiny_model(output="sigmoid")
    rep = evaluate(model, ds, context=4, mode="rollout", horizon=4, baselines=("copy_last",))
    res = rep["results"]
    clips = torch.stack([ds[i]["clip"] for i in range(2)])
    with torch.no_grad():
        prob = model.rollout(clips[:, :4], 4).frames
    assert res["model"]["vpn_nats_per_frame"] == pytest.approx(M.vpn_nats_per_frame(prob, clips[:, 4:8]), rel=1e-6)
    # copy-last on binary frames: each wrong pixel costs -log(1e-7); a 1 px/frame square moves
    # k pixels after k frames: 8k wrong pixels (k <= 4) -> mean over k = 1..4 of 8k
    assert res["copy_last"]["vpn_nats_per_frame"] == pytest.approx(20 * -math.log(1e-7), rel=1e-6)


def test_cli_evaluate_rollout_prints_them(tmp_path, capsys):
    from stae.checkpoint import save_model
    from stae.cli import main
    from tests.helpers import tiny_model
    from tests.helpers import write_tiny_clips

    data = write_tiny_clips(tmp_path / "clips.npy", n=3, t=6)
    ckpt = save_model(tmp_path / "m.safetensors", tiny_model(output="sigmoid"))
    out = tmp_path / "e.json"
    assert main(["evaluate", str(ckpt), "--data", str(data), "--mode", "rollout", "--context", "4", "--horizon", "2",
                 "--no-dis", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("mse_per_frame", "mae_per_frame", "ssim_openstl", "psnr_openstl", "ssim ^", "vpn_nats_per_frame"):
        assert name in printed
    import json
    assert "vpn_nats_per_frame" in json.loads(out.read_text())["results"]["model"]


def test_vpn_nats_bound_scores_one_step_and_rollout_on_the_same_frames(tmp_path):
    """benchmarks/vpn_nats_bound.py (run as a script, a tiny model): both predictions of frame 10
    come from the true frames 0-9, so the teacher-forced and the rollout score agree on the first
    predicted frame (and not on the next); ten finite scores each, for both input kinds."""
    import json
    import subprocess
    import sys

    from stae.model import build_model
    from stae.weights import save_model
    from tests.helpers import tiny_config

    torch.manual_seed(0)
    weights = save_model(tmp_path / "m.safetensors", build_model(tiny_config(output="sigmoid")))
    out = tmp_path / "bound.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "vpn_nats_bound.py"
    run = subprocess.run([sys.executable, str(script), str(weights), "--out", str(out)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    for r in json.loads(out.read_text())["rows"][str(weights)].values():
        one, fed = r["one_step_teacher_forced"]["per_predicted_frame"], r["rollout"]["per_predicted_frame"]
        assert len(one) == len(fed) == 10 and all(math.isfinite(v) for v in one + fed)
        assert one[0] == pytest.approx(fed[0], rel=1e-6)
        assert one[1] != pytest.approx(fed[1], rel=1e-6)  # frame 11: true frame 10 vs the model's own
        assert r["rollout"]["nats_per_frame"] == pytest.approx(sum(fed) / 10, rel=1e-12)


def test_one_step_floor_scores_a_zero_flow_model_like_the_zero_flow(tmp_path):
    """benchmarks/one_step_floor.py (run as a script, a tiny untrained model, whose Theta ends in
    a zero 1x1 convolution: its flow is exactly zero): the model's flow error equals the zero
    flow's, the constant-velocity guess beats the zero flow on Moving MNIST, and with no training
    time the drawing scores are unchanged (and split into even and odd shifts)."""
    import json
    import subprocess
    import sys

    from stae.model import build_model
    from stae.weights import save_model
    from tests.helpers import tiny_config

    torch.manual_seed(0)
    weights = save_model(tmp_path / "m.safetensors", build_model(tiny_config(output="sigmoid")))
    out = tmp_path / "floor.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "one_step_floor.py"
    run = subprocess.run([sys.executable, str(script), str(weights), "--minutes", "0", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    r = json.loads(out.read_text())["rows"][str(weights)]
    epe = r["flow_epe_digit_px"]
    assert epe["model"] == epe["zero_flow"]
    assert 0 < epe["constant_velocity"] < epe["zero_flow"]
    for key in ("redraw_training", "known_shift_training"):
        rec = r[key]
        assert rec["updates"] == 0 and rec["after"] == rec["before"]
    shifted = r["known_shift_training"]["after"]
    assert shifted["even_shift"] != shifted["odd_shift"] and "even_shift" not in r["redraw_training"]["after"]
    assert math.isfinite(r["one_step_mse_per_frame"]) and math.isfinite(r["current_frame_redrawn_mse_per_frame"])


@pytest.mark.parametrize("script", ["vpn_nats_bound.py", "one_step_floor.py"])
def test_benchmark_scripts_refuse_a_missing_model_in_one_line(tmp_path, script):
    """A model that does not exist (after a good one): one error line naming it, status 2, and
    the results file is neither written nor touched."""
    import subprocess
    import sys

    out = tmp_path / "r.json"
    out.write_text("earlier results")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / script
    run = subprocess.run([sys.executable, str(path), "rollout-mmnist", str(tmp_path / "nosuch.safetensors"),
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: checkpoint not found") and "nosuch" in lines[0]
    assert out.read_text() == "earlier results"
