"""Issue 16's speed changes compute the same function (float64, values and gradients): the
encoder's pool-before-tanh order and its pool without autograd, the separable kernel DFT of the FFT convolutions, the head run
only for the outputs a loss looks at; and the fused-cell peer of the benchmarks checks itself
(run as a script). Exactness only, no timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stae.losses import objective
from stae.model import build_model
from stae.model import fftconv, pointwise
from stae.model.config import DIRECT, FAST
from stae.model.spatial import SpatialEncoder, max_pool_2x2
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def test_encoder_pool_then_tanh_equals_tanh_then_pool():
    torch.manual_seed(0)
    enc = SpatialEncoder(1, (4, 6), 7).double()
    y = torch.randn(3, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    out = enc(y)
    ref = enc.net(y)  # the textbook order: conv -> tanh -> max-pool per block
    assert _rel(out, ref) < 1e-14
    g = torch.randn_like(ref)
    g1 = torch.autograd.grad(out, [y, *enc.parameters()], g)
    g0 = torch.autograd.grad(ref, [y, *enc.parameters()], g)
    for a, b in zip(g1, g0):
        assert _rel(a, b) < 1e-12


@pytest.mark.parametrize("h,w", [(16, 16), (15, 17), (2, 3)])
def test_inference_max_pool_equals_max_pool2d(h, w):
    """The encoder's pool without autograd (streaming), odd sizes floored as max_pool2d does."""
    y = torch.randn(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(max_pool_2x2(y), torch.nn.functional.max_pool2d(y, 2))
    enc = SpatialEncoder(1, (4, 6), 7).double()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        fast = enc(x)
    assert torch.equal(fast, enc(x).detach())


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-15), (torch.float32, 3e-7)])
def test_pointwise_tanh_equals_torch_tanh(dtype, tol):
    x = torch.cat([torch.linspace(-30, 30, 20001, dtype=dtype), torch.tensor([0.0, -0.0, 1e-30], dtype=dtype)])
    y = pointwise.tanh(x)
    assert float((y - torch.tanh(x)).abs().max()) < tol
    assert float(y.abs().max()) <= 1 and torch.equal(y[x > 20], torch.ones_like(y[x > 20]))
    xg = x.double().requires_grad_()
    (g,) = torch.autograd.grad(pointwise.tanh(xg).sum(), xg)
    assert float((g - (1 - torch.tanh(xg.detach()) ** 2)).abs().max()) < 1e-15


@pytest.mark.parametrize("k,offset", [(7, None), (15, None), (7, 0)])
def test_separable_kernel_spectrum_equals_the_dft_matrix(k, offset):
    plan = fftconv.fft_plan(12, 10, k)
    w = torch.randn(5, 3, k, k, dtype=torch.float64)
    p = k // 2 if offset is None else offset
    u = torch.arange(plan.n_h, dtype=torch.float64).view(-1, 1, 1, 1)
    v = torch.arange(plan.n_w // 2 + 1, dtype=torch.float64).view(1, -1, 1, 1)
    m = torch.arange(k, dtype=torch.float64).view(1, 1, -1, 1)
    n = torch.arange(k, dtype=torch.float64).view(1, 1, 1, -1)
    ang = -2 * torch.pi * (u * (p - m) / plan.n_h + v * (p - n) / plan.n_w)
    e = torch.polar(torch.ones_like(ang), ang).reshape(plan.freqs, k * k)  # the dense (F, k^2) DFT
    dense = (e @ w.permute(2, 3, 1, 0).reshape(k * k, -1).to(e.dtype)).view(plan.freqs, 3, 5)
    assert _rel(fftconv.kernel_spectrum(w, plan, offset), dense) < 1e-12
    if offset is None:
        assert _rel(fftconv.kernel_adjoint(w, plan), dense.transpose(1, 2).conj()) < 1e-12


@pytest.mark.parametrize("options", [DIRECT, FAST, {**FAST, "recompute_steps": True}],
                         ids=["direct", "fast", "fast+recompute"])
def test_first_output_equals_the_sliced_outputs(options):
    torch.manual_seed(0)
    model = build_model(tiny_config(**options)).double()
    with torch.no_grad():  # a non-zero Theta 1x1 conv: a real warp
        for p in model.flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    clip = torch.rand(2, 5, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    params = list(model.parameters())
    for first in (0, 2, 4):
        full = model(clip[:, :4])
        part = model(clip[:, :4], first_output=first) if first < 4 else None
        if part is None:
            continue
        for a, b in zip(part, full):
            assert a.shape[1] == 4 - first and _rel(a, b[:, first:]) < 1e-12
        losses = [objective(o.frames, o.logits, o.flows, clip[:, first + 1:5])["total"]
                  for o in (part, type(full)(*(x[:, first:] for x in full)))]
        g1, g0 = (torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]) for loss in losses)
        assert _rel(g1, g0) < 1e-10


def test_first_output_out_of_range_is_rejected():
    model = build_model(tiny_config())
    with pytest.raises(Exception, match="first_output"):
        model(torch.rand(1, 3, 1, 8, 8), first_output=3)


def test_fused_cell_peer_checks_itself():
    """The benchmarks' fused-cell peer: 703,651 parameters, stae's last-step output (float64)."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fused_cell_peer.py")], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "703,651 parameters" in run.stdout


def test_bench_train_times_the_reference_the_peer_and_stae(tmp_path):
    """Every kind of model bench_train times takes its training step (the reference with stae's
    train_step, the peer with its own): a tiny run of the script, one round, tau = 2."""
    out = tmp_path / "train.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--only", "reference",
                          "peer-b16-fp32", "fast-b1-fp32", "--rounds", "1", "--tau", "2", "--threads", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"reference", "peer-b16-fp32", "fast-b1-fp32"}
    assert all(r["seq_per_s"] > 0 for r in rows.values())


def test_time_to_quality_runs_and_writes_its_curve(tmp_path):
    """The benchmark's pipeline end to end on a tiny budget (run as a script): two configs,
    one seed, the JSON summary and the PNG curve."""
    out = tmp_path / "ttq.json"
    config = str(ROOT / "configs" / "vanilla-mmnist.yaml")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), config, config, "--seeds", "0",
           "--max-minutes", "0.001", "--eval-every", "1", "--subset", "2", "--confirm", "4", "--threads", "1",
           "--set", "train.batch_size=2", "--set", "data.train_sequences=8", "--set", "model.memory_channels=[4]",
           "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    import json

    res = json.loads(out.read_text())
    assert len(res["runs"]) == 2 and all(r["curve"] and "full_bce" in r["curve"][-1] for r in res["runs"])
    assert res["target_bce"] == 0.0835 and "machine" in res and out.with_suffix(".png").exists()


def test_benchmark_headline_shows_the_other_models_beside_the_targeted_rows(tmp_path):
    """run_all's issue-16 table (run as a script on a train.json): the 3x target is judged on
    stae's defaults only; the image-space head and rollout rows get their ratios and no target."""
    import json

    names = {"peer-b16-fp32": 2.0, "default-b16-fp32": 1.0, "fast-b16-fp32": 6.5, "fast-b16-fp32-image": 5.0,
             "fast-b16-fp32-rollout": 1.5}
    rows = [{"variant": k, "seq_per_s": v, "implementation": k, "batch": 16, "dtype": "fp32", "x_reference": None}
            for k, v in names.items()]
    (tmp_path / "train.json").write_text(json.dumps({"rows": rows}))
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--summary-only", "--results",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    by_what = {r["what"]: r for r in json.loads((tmp_path / "summary.json").read_text())["headline"]}
    assert by_what["training, batch 16, fp32, loss on every prediction"]["met"] == "yes"  # 6.5 / 2 >= 3
    image = by_what["training, batch 16, fp32, image-space head (video-gray64)"]
    rollout = by_what["training, batch 16, fp32, rollout training, 10 fed back (20-frame clips)"]
    assert (image["x_peer"], image["target"], image["met"]) == (2.5, "", None)
    assert (rollout["x_direct"], rollout["target"], rollout["met"]) == (1.5, "", None)
