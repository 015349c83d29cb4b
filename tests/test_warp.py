"""GG + S (eq. 4): pixel conventions, exact integer shifts, gradients."""

import pytest
import torch

from stae.model.warp import backward_to_forward, upsample_flow, warp


def _const_flow(b, h, w, dx, dy, dtype=torch.float32):
    f = torch.zeros(b, 2, h, w, dtype=dtype)
    f[:, 0], f[:, 1] = dx, dy
    return f


def test_zero_flow_is_identity():
    x = torch.rand(2, 3, 7, 9)
    assert torch.allclose(warp(x, torch.zeros(2, 2, 7, 9)), x, atol=1e-6)


@pytest.mark.parametrize("dx,dy", [(2, 0), (0, 3), (-1, 2), (3, -3)])
def test_integer_flow_shifts_exactly(dx, dy):
    x = torch.rand(1, 4, 16, 20)
    out = warp(x, _const_flow(1, 16, 20, dx, dy))
    # Backward convention: out(p) = x(p + flow), i.e. out[y, x] = x[y + dy, x + dx].
    m = 4  # away from borders
    expect = x[:, :, m + dy : 16 - m + dy, m + dx : 20 - m + dx]
    assert (out[:, :, m:-m, m:-m] - expect).abs().max() < 1e-5
    # The opposite sign is a different image.
    wrong = warp(x, _const_flow(1, 16, 20, -dx, -dy))
    assert (wrong[:, :, m:-m, m:-m] - expect).abs().max() > 0.1


def test_outside_samples_are_zero():
    x = torch.ones(1, 1, 5, 5)
    out = warp(x, _const_flow(1, 5, 5, 10, 0))
    assert out.abs().max() == 0


def test_half_pixel_flow_interpolates_bilinearly():
    x = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 3, 6).contiguous()
    out = warp(x, _const_flow(1, 3, 6, 0.5, 0))
    assert torch.allclose(out[0, 0, 1, :5], torch.arange(5.0) + 0.5)


def test_gradcheck_input_and_flow():
    torch.manual_seed(1)
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    # Non-integer flow away from the kinks of bilinear interpolation.
    flow = (torch.rand(1, 2, 5, 6, dtype=torch.float64) * 2 - 1 + 0.3).requires_grad_(True)
    assert torch.autograd.gradcheck(warp, (x, flow), eps=1e-6, atol=1e-5)


def test_shape_errors():
    with pytest.raises(ValueError, match="flow"):
        warp(torch.rand(1, 1, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="differ"):
        warp(torch.rand(1, 1, 4, 4), torch.rand(1, 2, 4, 5))


def test_forward_convention_and_upsampling():
    f = _const_flow(1, 4, 4, 1.5, -2)
    assert torch.equal(backward_to_forward(f), -f)
    up = upsample_flow(f, 2)
    assert up.shape == (1, 2, 8, 8)
    assert torch.allclose(up[:, 0], torch.full((1, 8, 8), 3.0)) and torch.allclose(up[:, 1], torch.full((1, 8, 8), -4.0))
