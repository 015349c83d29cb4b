"""The model's performance options compute the same function as the plain layers (DIRECT):
FFT convolutions, time checkpointing, the sub-pixel decoder, streaming with a cached
spectrum, and the reference implementation of the benchmarks. Exactness only, no timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stae.model.config import DIRECT, FAST, ModelConfig, preset
from stae.losses import objective
from stae.model import build_model

OPTIONS = [
    {"fft_conv": True},
    {"recompute_steps": True},
    {"subpixel_decoder": True},
    {"fft_conv": True, "recompute_steps": True, "subpixel_decoder": True},
]


# Two CPD blocks and two ConvLSTM layers, small enough for float64 checks in a second.
TINY = ModelConfig(encoder_channels=(4, 6), memory_channels=(5, 7), flow_1x1=False, **DIRECT)


def test_defaults_are_fast():
    assert ModelConfig().replace(**FAST) == ModelConfig() and preset("conv-1enc-1lstm").fft_conv


def _pair(name, options: dict, dtype=torch.float64):
    """(plain model, the same weights with ``options``) of a preset name or a ModelConfig."""
    torch.manual_seed(0)
    cfg0 = name if isinstance(name, ModelConfig) else preset(name)
    base = build_model(cfg0.replace(**DIRECT)).to(dtype)
    with torch.no_grad():  # a non-zero Theta 1x1 conv so the flow (and the warp) is not identity
        for p in base.flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = base.config.replace(**options)
    other = build_model(cfg).to(dtype)
    other.load_state_dict(base.state_dict())
    return base, other


def _loss_and_grads(model, clip):
    out = model(clip)
    loss = objective(out.frames, out.logits, out.flows, clip)["total"]
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return out, torch.cat([g.flatten() for g in grads])


def _rel(a, b):
    return float(((a - b).abs().max() / b.abs().max()).detach())


CASES = [(TINY, o) for o in OPTIONS] + [("conv-1enc-1lstm", OPTIONS[-1])]


@pytest.mark.parametrize("preset,options", CASES,
                         ids=lambda v: v if isinstance(v, str) else "+".join(v) if isinstance(v, dict) else "tiny")
def test_options_equal_default_forward_and_backward(preset, options):
    base, other = _pair(preset, options)
    clip = torch.rand(2, 3, 1, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out0, g0 = _loss_and_grads(base, clip)
    out1, g1 = _loss_and_grads(other, clip)
    for a, b in zip(out1, out0):
        assert _rel(a, b) < 1e-10
    assert _rel(g1, g0) < 1e-10


def test_recompute_steps_fc_memory_equal():
    cfg = ModelConfig(encoder_channels=(4, 4), memory="fc", fc_hidden=(64,), fc_frame_size=(16, 16), flow_1x1=False)
    torch.manual_seed(0)
    base = build_model(cfg).double()
    other = build_model(cfg.replace(recompute_steps=True)).double()
    other.load_state_dict(base.state_dict())
    clip = torch.rand(2, 3, 1, 16, 16, dtype=torch.float64)
    (o0, g0), (o1, g1) = _loss_and_grads(base, clip), _loss_and_grads(other, clip)
    assert _rel(o1.frames, o0.frames) < 1e-12 and _rel(g1, g0) < 1e-12


def test_run_state_and_streaming_match_with_fft():
    base, other = _pair("conv-1enc-1lstm", FAST)
    clip = torch.rand(1, 5, 1, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        _, s0 = base.run(clip)
        _, s1 = other.run(clip)
        assert _rel(s1[0][0], s0[0][0]) < 1e-10 and _rel(s1[0][1], s0[0][1]) < 1e-10
        assert s1[0][0].shape == s0[0][0].shape == (1, 45, 8, 8)
        # Streaming: the FFT step continues from either path's state and matches the default.
        st0, st1 = s0, s0
        for t in range(3):
            y0, f0, st0 = base.step(clip[:, t], st0)
            y1, f1, st1 = other.step(clip[:, t], st1)
            assert _rel(y1, y0) < 1e-10 and _rel(f1, f0) < 1e-10


def test_streaming_spectrum_cache_follows_weight_updates():
    base, other = _pair("conv-1enc-1lstm", {"fft_conv": True})
    frame = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        other.step(frame)  # fills the cache
        for m in (base, other):  # in-place updates, as an optimiser does
            m.memory.layers[0].conv.weight.mul_(1.5)
            m.flow.net[0].weight.mul_(-2.0)
        y0, _, _ = base.step(frame)
        y1, _, _ = other.step(frame)
    assert _rel(y1, y0) < 1e-10


def test_fft_memory_backward_reaches_state_and_input():
    _, model = _pair("conv-1enc-1lstm", {"fft_conv": True})
    base, _ = _pair("conv-1enc-1lstm", {})
    clip = torch.rand(1, 3, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    g = [torch.autograd.grad(m(clip).frames.square().sum(), clip)[0] for m in (base, model)]
    assert _rel(g[1], g[0]) < 1e-10


def test_bf16_autocast_runs_and_stays_close():
    torch.manual_seed(0)
    for options in (DIRECT, FAST):
        model = build_model("conv-1enc-1lstm", **options)
        clip = torch.rand(2, 3, 1, 16, 16, generator=torch.Generator().manual_seed(3))
        ref = model(clip)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(clip)
        loss = objective(out.frames.float(), out.logits.float(), out.flows.float(), clip)["total"]
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        assert (out.frames.float() - ref.frames).abs().max() < 0.05 * ref.frames.abs().max() + 1e-3


def test_streaming_under_bf16_autocast_mixes_in_bf16_and_stays_close():
    """Streamed steps under bf16 autocast keep a bfloat16 block spectrum (and float32 complex
    spectra outside autocast, the exact path above); predictions stay close over 8 frames."""
    torch.manual_seed(0)
    model = build_model("conv-1enc-1lstm", **FAST).eval()
    frames = torch.rand(8, 1, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    preds, dtypes = {}, {}
    for bf16 in (False, True):
        state, out = None, []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for frame in frames:
                pred, _, state = model.step(frame, state)
                out.append(pred.float())
        preds[bf16], dtypes[bf16] = torch.stack(out), model.memory._tiled_spectra._value[0].dtype
    assert dtypes == {False: torch.complex64, True: torch.bfloat16}
    assert 0 < (preds[True] - preds[False]).abs().max() < 0.05


def test_reference_model_equals_stae():
    """The benchmarks' reference (eight gate convolutions, per-step loop) is the same function."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_model.py"
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "703,651 parameters" in run.stdout
