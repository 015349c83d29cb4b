"""Checks of benchmarks/openstl_convlstm.py (the peer) and benchmarks/equal_wallclock.py (equal-time
training curves): the peer's size and schedules, its rollout, and a tiny end-to-end run of each
mode. A script beside them, run as a script by tests/test_equal_wallclock.py (benchmarks are never
imported by the tests).

    .venv/bin/python benchmarks/check_equal_wallclock.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

import openstl_convlstm as P  # this script's folder is on sys.path: run as a script

TINY = P.PeerConfig(layers=2, hidden=4, kernel=3)


def test_parameter_count_of_openstls_config():
    n = P.parameter_count(P.PeerConvLSTM())
    # layer 1: (16 + 128) -> 4 x 128 gates, 5x5, no bias; layers 2-4: (128 + 128) -> 512; head 128 -> 16
    assert n == 144 * 512 * 25 + 3 * 256 * 512 * 25 + 128 * 16 == 11_675_648
    # OpenSTL's published 15.0M also counts two layers per cell that its forward never uses
    assert n + 4 * P.OPENSTL_UNUSED_PER_LAYER == 15_083_520
    assert abs((n + 4 * P.OPENSTL_UNUSED_PER_LAYER) - P.OPENSTL_PUBLISHED_PARAMS) < 0.1e6


def test_teacher_forcing_and_rollout():
    torch.manual_seed(0)
    model = P.PeerConvLSTM(TINY)
    clip = torch.rand(2, 20, 1, 64, 64)
    with torch.no_grad():
        full = model(clip, eta=1.0)  # always the true frame: plain next-frame prediction
        state = [(torch.zeros(2, 4, 16, 16),) * 2 for _ in range(2)]
        by_hand = torch.stack([model._step(clip[:, t], state) for t in range(19)], 1)
        roll = model.rollout(clip[:, :10], 10)
        free = model(clip, eta=0.0)
        other = clip.clone()
        other[:, 10:] = torch.rand(2, 10, 1, 64, 64)
        free_other = model(other, eta=0.0)
    assert full.shape == (2, 19, 1, 64, 64) and roll.shape == (2, 10, 1, 64, 64)
    assert torch.allclose(full, by_hand, atol=1e-6)
    assert torch.allclose(roll, free[:, 9:], atol=1e-6)  # predictions of frames 10..19
    assert torch.equal(free, free_other)  # eta = 0 never reads the frames after the context
    assert torch.allclose(free[:, :10], full[:, :10], atol=1e-6)  # same inputs up to frame 9


def test_scheduled_sampling_and_one_cycle():
    assert P.sampling_eta(0) == 1.0
    assert P.sampling_eta(25_000) == pytest.approx(0.5)
    assert P.sampling_eta(49_999) == pytest.approx(2e-5)
    assert P.sampling_eta(50_000) == 0.0 and P.sampling_eta(80_000) == 0.0
    lr0, b0 = P.one_cycle(0.0, 5e-4)
    assert lr0 == pytest.approx(5e-4 / 25) and b0 == pytest.approx(0.95)
    assert P.one_cycle(0.3, 5e-4) == pytest.approx((5e-4, 0.85))
    assert P.one_cycle(1.0, 5e-4) == pytest.approx((5e-4 / 25 / 1e4, 0.95))
    # the same curve as torch's OneCycleLR at matching progress (its defaults, final_div_factor 1e4)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=5e-4)
    n = 1001
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-4, total_steps=n, final_div_factor=1e4)
    peak = 0.3 * n - 1  # torch's step of the peak; its last step is n - 1
    for s in range(n):
        if s in (150, 299, 300, 700, 1000):
            frac = 0.3 * s / peak if s <= peak else 0.3 + 0.7 * (s - peak) / (n - 1 - peak)
            assert opt.param_groups[0]["lr"] == pytest.approx(P.one_cycle(frac, 5e-4)[0], rel=1e-6)
            assert opt.param_groups[0]["betas"][0] == pytest.approx(P.one_cycle(frac, 5e-4)[1], rel=1e-6)
        opt.step()
        sched.step()


def test_peer_rejects_bad_shapes():
    from stae.errors import StaeError

    with pytest.raises(StaeError, match="divisible by the patch"):
        P.PeerConfig(size=30)
    with pytest.raises(StaeError, match="this peer takes"):
        P.PeerConvLSTM(TINY)(torch.zeros(1, 20, 1, 32, 32))


def test_side_by_side_peer_tiny_run_and_plot(tmp_path, monkeypatch):
    import equal_wallclock as S

    res = S.train_peer(minutes=0.02, threads=1, eval_every=0.01, test_sequences=3, config=TINY)
    assert res["iterations"] >= 1 and res["curve"][0]["minutes"] == 0.0
    assert all(math.isfinite(c["test_mse"]) for c in res["curve"])
    assert set(res["final"]) == {"mse", "mae", "ssim_openstl", "psnr_openstl", "ssim_gaussian"}
    assert res["final"]["mse"] == pytest.approx(res["curve"][-1]["test_mse"], rel=1e-6)
    target = S.load_test_set(3)[:, 10:]
    assert res["blank"]["mse"] == pytest.approx(float(target.double().pow(2).sum() / 30), rel=1e-9)
    assert res["copy_last"]["mse"] > 0
    # the CLI writes the JSON; the plot puts curves on one PNG
    out = tmp_path / "peer.json"
    monkeypatch.setattr(S, "train_peer", lambda *a, **k: res)
    assert S.main(["peer", "--minutes", "0.02", "--eval-every", "0.01", "--smoke", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["smoke"] is True and "SMOKE" in saved["label"] and saved["machine"]["cpu"]
    png = S.plot_curves([out, out], tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.undo()
    assert S.main(["peer", "--minutes", "0", "--out", str(out)]) == 2
    assert S.main(["plot", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x.png")]) == 2


def test_side_by_side_stae_tiny_run(tmp_path):
    import equal_wallclock as S

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model: {encoder_channels: [4], memory_channels: [4], flow_kernel: 3, spatial_kernel: 3, "
                   "memory_kernel: 3}\ntrain: {batch_size: 2, max_steps: 100000}\ndata: {val_sequences: 4}\n")
    res = S.train_stae(cfg, tmp_path / "run", minutes=0.02, threads=1, eval_every=0.01, test_sequences=2)
    assert len(res["curve"]) >= 1 and res["iterations"] >= 1
    assert all(math.isfinite(c["test_mse"]) for c in res["curve"])
    assert res["final"]["mse"] == pytest.approx(res["curve"][-1]["test_mse"])
    assert res["params"] > 0
    from stae.errors import StaeError
    with pytest.raises(StaeError, match="exists"):
        S.train_stae(cfg, tmp_path / "run", minutes=0.02, threads=1, eval_every=0.01)


def main() -> int:
    import tempfile

    checks = [test_parameter_count_of_openstls_config, test_teacher_forcing_and_rollout,
              test_scheduled_sampling_and_one_cycle, test_peer_rejects_bad_shapes]
    for check in checks:
        check()
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        (Path(d) / "a").mkdir()
        (Path(d) / "b").mkdir()
        test_side_by_side_peer_tiny_run_and_plot(Path(d) / "a", mp)
        test_side_by_side_stae_tiny_run(Path(d) / "b")
    print(f"{len(checks) + 2} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
