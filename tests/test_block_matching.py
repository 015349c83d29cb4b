"""Block matching (model.block_matching, matching.py): the observed flow of an integer shift is
the shift (in the warp's convention), flat frames give zero flow, a run resumed from the state
equals the whole clip and so does the exported zero state, gradients reach every parameter,
and bad options are one-line errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stae.errors import StaeError
from stae.export import initial_state, io_names, state_shapes
from stae.model import build_model
from stae.model.autoencoder import parameter_table
from stae.model.config import ModelConfig
from stae.model.matching import BlockMatching
from stae.model.warp import warp
from tests.helpers import tiny_config


@pytest.mark.parametrize("refine", [0, 2])
@pytest.mark.parametrize("dx,dy", [(1, 0), (0, -2), (2, 1), (-1, -1)])
def test_integer_shift_is_recovered_in_the_warp_convention(dx, dy, refine):
    g = torch.Generator().manual_seed(0)
    prev = torch.rand(2, 1, 32, 32, generator=g, dtype=torch.float64)
    cur = torch.roll(prev, shifts=(-dy, -dx), dims=(-2, -1))  # cur(p) = prev(p + d)
    out = BlockMatching(radius=2, window=5, stride=1, refine=refine).double()(prev, cur)
    m = 6 + 6 * (refine > 0)  # away from the wrap-around of the roll (the refinement's boxes reach further)
    inner = out[..., m:-m, m:-m]
    # a soft-argmin: exact up to the weight exp(-TEMPERATURE * cost) left on the other displacements
    torch.testing.assert_close(inner[:, 0], torch.full_like(inner[:, 0], dx), rtol=0, atol=5e-3)
    torch.testing.assert_close(inner[:, 1], torch.full_like(inner[:, 1], dy), rtol=0, atol=5e-3)
    assert float(inner[:, 2].min()) > 0.99
    # the same flow warps prev onto cur (the model's backward-flow convention)
    torch.testing.assert_close(warp(prev, out[:, :2])[..., m:-m, m:-m], cur[..., m:-m, m:-m], rtol=0, atol=1e-2)


def test_refinement_recovers_a_sub_pixel_shift_the_soft_argmin_misses():
    """A smooth frame moved by (0.4, -0.3) px: the soft-argmin of integer displacements is off by
    about 0.1 px or more; two rounds of smoothing and Lucas-Kanade steps recover it to 0.02 px."""
    g = torch.Generator().manual_seed(3)
    prev = F.interpolate(torch.rand(2, 1, 12, 12, generator=g, dtype=torch.float64), size=(48, 48),
                         mode="bicubic", align_corners=True)
    shift = torch.tensor([0.4, -0.3], dtype=torch.float64).view(1, 2, 1, 1)
    cur = warp(prev, shift.expand(2, 2, 48, 48), "border")  # cur(p) = prev(p + shift)
    error = {}
    for refine in (0, 2):
        flow = BlockMatching(radius=2, window=7, stride=1, refine=refine).double()(prev, cur)[:, :2]
        error[refine] = float((flow - shift)[..., 10:-10, 10:-10].norm(dim=1).mean())
    assert error[0] > 0.1 and error[2] < 0.02, error


def test_stride_gives_feature_grid_pixels_and_flat_frames_give_zero_flow():
    prev = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    cur = torch.roll(prev, shifts=(0, -2), dims=(-2, -1))
    out = BlockMatching(radius=3, window=5, stride=2).double()(prev, cur)
    assert out.shape == (1, 3, 16, 16)
    torch.testing.assert_close(out[0, 0, 4:-4, 4:-4], torch.ones(8, 8, dtype=torch.float64), rtol=0, atol=5e-3)
    flat = torch.full((1, 1, 16, 16), 0.5)
    still = BlockMatching(radius=1, window=3, stride=1)(flat, flat)
    torch.testing.assert_close(still[:, :2], torch.zeros(1, 2, 16, 16), rtol=0, atol=1e-6)
    torch.testing.assert_close(still[:, 2], torch.full((1, 16, 16), 1 / 9))


def _matching_model(dtype=torch.float64, **kw):
    torch.manual_seed(0)
    model = build_model(tiny_config(head="image", block_matching=True, matching_radius=1, matching_window=3,
                                    warp_padding="border", **kw)).to(dtype)
    with torch.no_grad():  # Theta's 1x1 and D's last conv start at zero: move every parameter
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_a_run_resumed_from_its_state_equals_the_whole_clip():
    """(Streaming frame by frame equals the whole clip: tests/test_image_head.py.)"""
    model = _matching_model().eval()
    clip = torch.rand(2, 5, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = model(clip)
    _, head_state = model.run(clip[:, :2])
    torch.testing.assert_close(model.run(clip[:, 2:], head_state)[0].frames, out.frames[:, 2:], rtol=0, atol=1e-10)


def test_exported_zero_state_is_the_empty_memory():
    model = _matching_model().eval()
    frame = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    zeros = [z.double() for z in initial_state(model, 1, 16, 16)]
    n = len(zeros) // 2
    pred, flow, _ = model.step(frame, [(zeros[i], zeros[n + i]) for i in range(n)])
    want, want_flow, _ = model.step(frame, None)
    torch.testing.assert_close(pred, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(flow, want_flow, rtol=0, atol=1e-12)
    assert state_shapes(model, 1, 16, 16) == [(1, 4, 8, 8), (1, 1, 16, 16), (1, 4, 8, 8), (1, 1, 1, 1)]
    assert io_names(model)[0] == ["frame", "h0", "last_frame", "c0", "last_frame_real"]


def test_with_the_skip_a_new_model_predicts_the_observed_flow():
    """matching_skip: Theta's 1x1 convolution starts at zero, so a new model's flow is the
    observed flow (pooled onto the feature grid), the constant-velocity guess."""
    torch.manual_seed(0)
    model = build_model(None, head="image", block_matching=True, matching_refine=2, matching_skip=True).eval()
    g = torch.Generator().manual_seed(4)
    prev = F.interpolate(torch.rand(1, 1, 8, 8, generator=g), size=(32, 32), mode="bicubic")
    cur = torch.roll(prev, shifts=(0, -1), dims=(-2, -1))
    with torch.no_grad():
        _, _, state = model.step(prev, None)
        _, flow, _ = model.step(cur, state)
        seen = BlockMatching(3, 9, model.stride, 2)(prev, cur)[:, :2]
    torch.testing.assert_close(flow, seen, rtol=0, atol=1e-6)
    assert float(flow[0, 0, 4:-4, 4:-4].mean()) > 0.4  # one image pixel = half a feature-grid pixel


@pytest.mark.parametrize("skip", [False, True], ids=["plain", "matching_skip"])
def test_gradients_reach_every_parameter_and_the_memory_reads_three_more_channels(skip):
    model = _matching_model(torch.float32, matching_skip=skip)
    out = model(torch.rand(1, 3, 1, 16, 16))
    (out.frames.square().mean() + out.flows.square().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"
    plain = parameter_table(build_model(None, head="image"))
    assert parameter_table(build_model(None, head="image", block_matching=True))["memory"] == \
        plain["memory"] + 3 * 4 * 45 * 7 * 7  # three input channels more into the four gates


def test_bad_options_are_one_line_errors():
    with pytest.raises(StaeError, match="block_matching needs memory='conv'"):
        ModelConfig.from_dict({"block_matching": True, "memory": "fc", "fc_hidden": [1024], "encoder_channels": [16, 16]})
    with pytest.raises(StaeError, match="matching_window"):
        ModelConfig.from_dict({"block_matching": True, "matching_window": 4})
    with pytest.raises(StaeError, match="matching_radius"):
        ModelConfig.from_dict({"block_matching": True, "matching_radius": 0})
    with pytest.raises(StaeError, match="matching_skip"):
        ModelConfig.from_dict({"matching_skip": True})
    with pytest.raises(StaeError, match="matching_refine"):
        ModelConfig.from_dict({"block_matching": True, "matching_refine": -1})
