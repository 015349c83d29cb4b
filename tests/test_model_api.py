"""Model API: step == forward, rollout, C = 1 and 3, shape errors (every preset: test_presets.py)."""

import pytest
import torch

from stae.model.config import ModelConfig
from stae.errors import StaeError
from stae.model import build_model
from tests.helpers import tiny_config


def _stream(model, clip):
    state, frames, flows = None, [], []
    for t in range(clip.shape[1]):
        f, fl, state = model.step(clip[:, t], state)
        frames.append(f)
        flows.append(fl)
    return torch.stack(frames, 1), torch.stack(flows, 1)


@pytest.mark.parametrize("cfg", [tiny_config(), tiny_config(memory_channels=(3, 5), encoder_channels=(2, 4)),
                                 tiny_config(in_channels=3, output="sigmoid"),
                                 tiny_config(memory="fc", fc_hidden=(32,), fc_frame_size=(8, 8), flow_1x1=False)],
                         ids=["1enc-1lstm", "2enc-2lstm", "rgb-sigmoid", "fc"])
def test_step_streaming_equals_forward(cfg):
    torch.manual_seed(0)
    model = build_model(cfg).double()
    # Make the flow non-zero so the warp is exercised (the 1x1 conv starts at zero).
    for p in model.flow.parameters():
        torch.nn.init.normal_(p, std=0.3)
    clip = torch.rand(2, 4, cfg.in_channels, 8, 8, dtype=torch.float64)
    out = model(clip)
    frames, flows = _stream(model, clip)
    assert out.frames.shape == (2, 4, cfg.in_channels, 8, 8)
    assert out.flows.shape == (2, 4, 2, 8 // cfg.stride, 8 // cfg.stride)
    assert flows.abs().max() > 0
    assert torch.allclose(out.frames, frames, atol=1e-12) and torch.allclose(out.flows, flows, atol=1e-12)


def test_rollout_feeds_predictions_back():
    torch.manual_seed(0)
    model = build_model(tiny_config(output="sigmoid")).double()
    clip = torch.rand(1, 3, 1, 8, 8, dtype=torch.float64)
    roll = model.rollout(clip, horizon=3)
    assert roll.frames.shape == (1, 3, 1, 8, 8)
    # By hand: observe the clip, then step on each prediction.
    frames, _ = _stream(model, clip)
    state = None
    for t in range(3):
        _, _, state = model.step(clip[:, t], state)
    expect = [frames[:, -1]]
    for _ in range(2):
        f, _, state = model.step(expect[-1], state)
        expect.append(f)
    assert torch.allclose(roll.frames, torch.stack(expect, 1), atol=1e-12)
    assert ((roll.frames >= 0) & (roll.frames <= 1)).all()


def test_initial_flow_is_identity_warp():
    model = build_model()  # the vanilla model: Theta's 1x1 conv starts at zero
    out = model(torch.rand(1, 2, 1, 16, 16))
    assert torch.equal(out.flows, torch.zeros_like(out.flows))
    assert model.memory.layers[0].conv.bias[45:90].eq(1).all()


@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_warp_padding_is_what_the_sampler_reads_off_the_map(padding):
    # A flow of +100 feature pixels points every sample off the map: the decoder then sees
    # zeros, or the right/bottom edge features of x (broadcast), per config.warp_padding.
    model = build_model(tiny_config(warp_padding=padding))
    with torch.no_grad():
        model.flow.net[-1].bias.fill_(100.0)  # the 1x1 conv: flow = 100 * scale everywhere
        frame = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        _, flow, _ = model.step(frame)
        assert torch.allclose(flow, torch.full_like(flow, 100.0))
        x = model.encoder(frame)
        seen = torch.zeros_like(x) if padding == "zeros" else x[..., -1:, -1:].expand_as(x)
        assert torch.allclose(model.step(frame)[0], model.to_image(model.decoder(seen)), atol=1e-6)
    with pytest.raises(ValueError, match="warp_padding"):
        tiny_config(warp_padding="reflect").validate()


def test_fc_preset_runs_on_its_frame_size():
    model = build_model("fc-2enc-1lstm")
    with torch.no_grad():
        out = model(torch.rand(1, 2, 1, 64, 64))
    assert out.flows.shape == (1, 2, 2, 16, 16) and torch.isfinite(out.frames).all()
    with pytest.raises(StaeError, match="built for 64x64"):
        model(torch.rand(1, 2, 1, 32, 32))


def test_bad_shapes_are_rejected_with_what_fits():
    model = build_model(tiny_config(encoder_channels=(2, 4)))
    with pytest.raises(StaeError, match=r"H=30 and W=32 must be divisible by 4.*28x32 or 32x36"):
        model(torch.rand(1, 2, 1, 30, 32))
    with pytest.raises(StaeError, match="3 channel.*C=1"):
        model(torch.rand(1, 2, 3, 32, 32))
    with pytest.raises(StaeError, match=r"\(B, T, C, H, W\)"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(StaeError, match=r"\(B, C, H, W\)"):
        model.step(torch.rand(1, 2, 1, 32, 32))
    with pytest.raises(StaeError, match="horizon"):
        model.rollout(torch.rand(1, 2, 1, 32, 32), 0)


def test_config_from_dict_rejects_unknown_and_wrong_types():
    assert ModelConfig.from_dict({"memory_channels": [64, 128]}).memory_channels == (64, 128)
    with pytest.raises(ValueError, match="unknown config key model.colour"):
        ModelConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="'model.flow_kernel': expected an integer"):
        ModelConfig.from_dict({"flow_kernel": "15"})
    with pytest.raises(ValueError, match="'model.memory': 'lstm' is not one of conv, fc"):
        ModelConfig.from_dict({"memory": "lstm"})
    with pytest.raises(ValueError, match="memory must be one of"):
        ModelConfig(memory="lstm").validate()
    # the old name of recompute_steps is read under the new one
    assert ModelConfig.from_dict({"checkpoint_time": True}).recompute_steps
    with pytest.raises(ValueError, match="odd"):
        ModelConfig(flow_kernel=4).validate()
    round_trip = ModelConfig.from_dict(ModelConfig(flow_clamp=7.75).to_dict())
    assert round_trip == ModelConfig(flow_clamp=7.75)
