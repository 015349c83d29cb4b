"""Every named variant (``stae.presets()``), as timm tests its registry: forward shapes,
backward (every parameter gets a gradient, named when it does not), streaming ``step`` ==
``forward``, and the TorchScript export == eager. The two fully-connected variants (50 M and
84 M parameters) are excluded by name below: their layers are the same code as the reduced
fc configuration tested in test_model_api.py and test_export.py, at a width the suite can run.
"""

from __future__ import annotations

import pytest
import torch

from stae.export import export_model, initial_state
from stae.model import build_model
from stae.model.config import preset, presets

TOO_LARGE = {"fc-2enc-1lstm": "50 M parameters", "fc-2enc-2lstm": "84 M parameters"}
NAMES = [pytest.param(n, marks=pytest.mark.skip(reason=TOO_LARGE[n])) if n in TOO_LARGE else n for n in presets()]
SIZE = 16  # divisible by the deepest encoder's stride (4)


def _model(name: str, dtype=torch.float32):
    torch.manual_seed(0)
    model = build_model(name).to(dtype)
    with torch.no_grad():  # Theta's last layer starts at zero; move it so every parameter acts
        for p in model.flow.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes(name):
    model, cfg = _model(name), preset(name)
    out = model(torch.rand(2, 3, cfg.in_channels, SIZE, SIZE))
    h = SIZE // cfg.stride
    assert out.frames.shape == out.logits.shape == (2, 3, cfg.in_channels, SIZE, SIZE)
    assert out.flows.shape == (2, 3, 2, h, h)
    assert torch.isfinite(out.frames).all() and torch.isfinite(out.flows).all()


@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_parameter(name):
    model = _model(name)
    out = model(torch.rand(1, 3, 1, SIZE, SIZE))
    (out.frames.square().mean() + out.flows.square().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients in {bad}"


@pytest.mark.parametrize("name", NAMES)
def test_step_equals_forward(name):
    model = _model(name, torch.float64).eval()
    clip = torch.rand(1, 3, 1, 8, 8, dtype=torch.float64)
    out, state = model(clip), None
    for t in range(clip.shape[1]):
        frame, flow, state = model.step(clip[:, t], state)
        torch.testing.assert_close(frame, out.frames[:, t], rtol=0, atol=1e-10)
        torch.testing.assert_close(flow, out.flows[:, t], rtol=0, atol=1e-10)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", NAMES)
def test_torchscript_export_equals_eager(name, tmp_path):
    model = _model(name).eval()
    path = export_model(model, tmp_path / "m.pt", "torchscript", size=(SIZE, SIZE))
    traced = torch.jit.load(str(path))
    state_eager, state = None, initial_state(model, 1, SIZE, SIZE)
    with torch.no_grad():
        for f in torch.rand(3, 1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1)):
            pred, flow, state_eager = model.step(f, state_eager)
            out = traced(f, *state)
            state = list(out[2:])
            torch.testing.assert_close(out[0], pred, rtol=0, atol=1e-4)
            torch.testing.assert_close(out[1], flow, rtol=0, atol=1e-4)
