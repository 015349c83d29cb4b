"""The image-space head (model.head=image, issue 13): exact integer shifts, gradients reaching
every parameter for every sub-option and colour, step == forward, bad options; the flow
penalties of Sec. 5 on hand-made flows; the real-video evaluation on a tiny generated mp4."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stae.cli import main
from stae.errors import StaeError
from stae.losses import LossWeights, flow_sparsity, flow_temporal, objective
from stae.model import build_model
from stae.model.autoencoder import parameter_table
from stae.model.config import ModelConfig, preset
from stae.model.heads import image_prediction
from stae.training.run_config import load_config
from stae.weights import save_model
from tests.helpers import tiny_config

SUB = [dict(image_residual=r, image_mask=m) for r in (True, False) for m in (True, False)]


def _image_model(c=1, dtype=torch.float32, **kw):
    torch.manual_seed(0)
    model = build_model(tiny_config(head="image", in_channels=c, warp_padding="border", **kw)).to(dtype)
    with torch.no_grad():  # Theta's 1x1 and D's last conv start at zero: move every parameter
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("c", [1, 3])
def test_integer_flow_shifts_the_frame_exactly(c):
    """A flow of k feature pixels moves the full-resolution frame by exactly k * stride pixels."""
    frame = torch.rand(2, c, 16, 16, dtype=torch.float64)
    flow = torch.zeros(2, 2, 8, 8, dtype=torch.float64)
    flow[:, 0] = 1.0  # one feature pixel = 2 image pixels in x (backward: out(p) = in(p + 2))
    flow[:, 1] = -1.0  # and -2 in y
    out = image_prediction(frame, flow, None, 2, residual=False, mask=False, padding="zeros")
    torch.testing.assert_close(out[..., 2:, :-2], frame[..., :-2, 2:], rtol=0, atol=1e-12)


def test_model_head_with_integer_flow_and_no_d_is_the_shift():
    model = build_model(tiny_config(head="image", image_residual=False, image_mask=False)).double()
    assert model.decoder is None
    frame = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    x = model.encoder(frame)
    flow = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    flow[:, 0] = -2.0
    pred, _ = model.head(x, flow=flow, frame=frame)
    torch.testing.assert_close(pred[..., 4:], frame[..., :-4], rtol=0, atol=1e-12)


def test_blend_mask_zero_keeps_the_last_frame():
    frame = torch.rand(1, 1, 8, 8)
    flow = torch.full((1, 2, 4, 4), 1.0)
    decoded = torch.full((1, 1, 8, 8), -60.0)  # sigmoid ~ 0: do not move
    out = image_prediction(frame, flow, decoded, 2, residual=False, mask=True)
    torch.testing.assert_close(out, frame, rtol=0, atol=1e-6)


def test_new_model_starts_as_copy_last():
    model = build_model(tiny_config(head="image")).eval()
    clip = torch.rand(1, 3, 1, 16, 16)
    torch.testing.assert_close(model(clip).frames, clip, rtol=0, atol=1e-6)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("sub", SUB, ids=lambda s: f"res{int(s['image_residual'])}-mask{int(s['image_mask'])}")
def test_gradients_reach_every_parameter(sub, c):
    model = _image_model(c, **sub)
    out = model(torch.rand(1, 3, c, 16, 16))
    (out.frames.square().mean() + out.flows.square().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


MATCHING = dict(block_matching=True, matching_radius=1, matching_window=3, matching_refine=1)  # model.md#block-matching-option


SKIP = dict(MATCHING, matching_skip=True)  # model.md#block-matching-option


@pytest.mark.parametrize("matching", [{}, MATCHING, SKIP], ids=["plain", "block_matching", "matching_skip"])
@pytest.mark.parametrize("recompute", [False, True])
def test_step_and_recompute_equal_forward(recompute, matching):
    model = _image_model(1, torch.float64, recompute_steps=recompute, **matching).eval()
    clip = torch.rand(1, 4, 1, 16, 16, dtype=torch.float64)
    with torch.enable_grad():
        out = model(clip)
    state = None
    for t in range(4):
        frame, flow, state = model.step(clip[:, t], state)
        torch.testing.assert_close(frame, out.frames[:, t], rtol=0, atol=1e-10)
        torch.testing.assert_close(flow, out.flows[:, t], rtol=0, atol=1e-10)


def test_decoder_channels_and_counts():
    assert preset("conv-1enc-1lstm").decoder_channels == 1  # the paper's head is unchanged
    base = parameter_table(build_model(None))["total"]
    assert base == 703_651
    per_channel = 32 * 7 * 7 + 1  # one output channel of D
    assert parameter_table(build_model(None, head="image"))["total"] == base + per_channel  # residual + mask
    assert parameter_table(build_model(None, head="image", image_mask=False))["total"] == base
    assert parameter_table(build_model(None, head="image", image_mask=False, image_residual=False))["total"] == \
        base - per_channel


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(StaeError, match="head"):
        ModelConfig.from_dict({"head": "pixels"})
    with pytest.raises(StaeError, match="output='linear'"):
        ModelConfig.from_dict({"head": "image", "output": "sigmoid"})
    with pytest.raises(StaeError, match="train.flow_l1_weight"):
        load_config(None, ["train.flow_l1_weight=-1"])
    with pytest.raises(StaeError, match="train.flow_temporal_weight"):
        load_config(None, ["train.flow_temporal_weight=-0.5"])
    model = build_model(tiny_config(head="image"))
    with pytest.raises(StaeError, match="frame"):
        model.head(torch.rand(1, 4, 8, 8), flow=torch.zeros(1, 2, 8, 8))
    assert main(["train", "--set", "model.head=pixels", "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "head" in err


def test_flow_penalties_on_hand_made_flows():
    flows = torch.zeros(1, 3, 2, 2, 2)
    flows[0, 1, 0] = 1.0  # step 1: x = 1 on the 4 pixels
    flows[0, 2, 1, 0, 0] = -4.0  # step 2: one y entry
    # |T|: (4 * 1 + 4) / 24 elements
    assert float(flow_sparsity(flows)) == pytest.approx(8 / 24)
    # |T_1 - T_0| = 4 ones; |T_2 - T_1| = 4 ones (x back to 0) + 4 = 8; over 2 * 8 elements
    assert float(flow_temporal(flows)) == pytest.approx((4 + 8) / 16)
    assert float(flow_temporal(flows[:, :1])) == 0.0
    frames = torch.zeros(1, 3, 1, 4, 4)
    terms = objective(frames, frames, flows, frames, LossWeights(huber=0.0, flow_l1=2.0, flow_temporal=3.0))
    assert float(terms["total"]) == pytest.approx(2 * 8 / 24 + 3 * 12 / 16)
    assert set(terms) == {"intensity", "gradient", "flow_l1", "flow_temporal", "total"}


def _write_mp4(path, n=16, size=32):
    av = pytest.importorskip("av")
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=25)
    s.width = s.height = size
    s.pix_fmt = "yuv420p"
    for t in range(n):
        f = np.zeros((size, size), np.uint8)
        f[8:20, 2 + t:14 + t] = 200
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()


def test_evaluate_a_video_file_per_clip(tmp_path, capsys):
    pytest.importorskip("cv2")
    video = tmp_path / "clip.mp4"
    _write_mp4(video)
    ckpt = save_model(tmp_path / "m.safetensors", build_model(tiny_config(head="image")))
    out = tmp_path / "ev.json"
    assert main(["evaluate", str(ckpt), "--data", str(video), "--context", "4", "--size", "16",
                 "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    clip = rep["clips"]["clip.mp4"]
    assert clip["windows"] == 16 - 5 + 1  # every window of 5 frames
    assert set(clip["results"]) == {"model", "copy_last", "dis"}
    # a new image-head model is copy-last: the same MSE
    assert clip["mse_vs_copy"]["model"] == pytest.approx(1.0, abs=1e-4)
    assert "mse / copy" in capsys.readouterr().out
    assert main(["evaluate", str(ckpt), "--data", str(video), "--mode", "rollout", "--out", str(out)]) == 2


def test_evaluate_textures_reports_epe_and_flicker(tmp_path):
    pytest.importorskip("cv2")
    ckpt = save_model(tmp_path / "m.safetensors", build_model(tiny_config(head="image")))
    out = tmp_path / "ev.json"
    assert main(["evaluate", str(ckpt), "--data", "textures", "--limit", "2", "--size", "16", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert {"epe"} <= set(rep["results"]["model"]) and rep["results"]["model"]["epe"] == pytest.approx(
        rep["results"]["copy_last"]["epe"])  # zero flow at the start
    f = rep["flicker"]
    assert f["static_pixels"] > 0 and f["model_flicker"] == 0.0 and f["dis_flicker"] >= 0


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_of_the_image_head_equals_eager(tmp_path):
    from stae.export import export_model, initial_state

    model = _image_model(1).eval()
    path = export_model(model, tmp_path / "m.pt", "torchscript", size=(16, 16))
    traced = torch.jit.load(str(path))
    state_eager, state = None, initial_state(model, 1, 16, 16)
    with torch.no_grad():
        for f in torch.rand(3, 1, 1, 16, 16, generator=torch.Generator().manual_seed(1)):
            pred, flow, state_eager = model.step(f, state_eager)
            out = traced(f, *state)
            state = list(out[2:])
            torch.testing.assert_close(out[0], pred, rtol=0, atol=1e-4)
            torch.testing.assert_close(out[1], flow, rtol=0, atol=1e-4)
