"""The fused ConvLSTM cell equals a direct transcription of eq. (1)."""

import torch
import torch.nn.functional as F

from stae.model.memory import ConvLSTMCell, FCLSTMCell


def _eq1(x, h, c, w_x, w_h, b, k):
    """Eq. (1) with eight separate convolutions: per gate x * w_x (+ bias) and h * w_h."""
    conv = lambda inp, w, bias=None: F.conv2d(inp, w, bias, padding=k // 2)  # noqa: E731
    i = torch.sigmoid(conv(x, w_x["i"], b["i"]) + conv(h, w_h["i"]))
    f = torch.sigmoid(conv(x, w_x["f"], b["f"]) + conv(h, w_h["f"]))
    c_tilde = torch.tanh(conv(x, w_x["c"], b["c"]) + conv(h, w_h["c"]))
    c_new = c_tilde * i + c * f
    o = torch.sigmoid(conv(x, w_x["o"], b["o"]) + conv(h, w_h["o"]))
    return o * torch.tanh(c_new), c_new


def test_fused_cell_equals_eight_convolutions():
    torch.manual_seed(3)
    d, dm, k = 3, 4, 5
    cell = ConvLSTMCell(d, dm, k).double()
    torch.nn.init.normal_(cell.conv.weight)
    torch.nn.init.normal_(cell.conv.bias)
    wt, bias = cell.conv.weight, cell.conv.bias
    names = ["i", "f", "c", "o"]
    w_x = {n: wt[j * dm : (j + 1) * dm, :d] for j, n in enumerate(names)}
    w_h = {n: wt[j * dm : (j + 1) * dm, d:] for j, n in enumerate(names)}
    b = {n: bias[j * dm : (j + 1) * dm] for j, n in enumerate(names)}
    x = torch.randn(2, d, 6, 7, dtype=torch.float64)
    h = torch.randn(2, dm, 6, 7, dtype=torch.float64)
    c = torch.randn(2, dm, 6, 7, dtype=torch.float64)
    got_h, got_c = cell(x, (h, c))
    exp_h, exp_c = _eq1(x, h, c, w_x, w_h, b, k)
    assert torch.allclose(got_h, exp_h, atol=1e-12) and torch.allclose(got_c, exp_c, atol=1e-12)


def test_parameter_count_equals_eight_convolutions_one_bias_per_gate():
    d, dm, k = 32, 45, 7
    cell = ConvLSTMCell(d, dm, k)
    eight = 4 * (d * dm * k * k + dm) + 4 * (dm * dm * k * k)
    assert sum(p.numel() for p in cell.parameters()) == eight == 679_320


def test_initialisation_sec4():
    cell = ConvLSTMCell(3, 4, 3)
    cell.init_parameters(0.08, 1.0)
    assert cell.conv.weight.abs().max() <= 0.08
    assert torch.equal(cell.conv.bias, torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 8))


def test_fc_cell_peepholes():
    torch.manual_seed(0)
    cell = FCLSTMCell(5, 3).double()
    cell.init_parameters(0.5, 1.0)
    x = torch.randn(2, 5, dtype=torch.float64)
    h0, c0 = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    h, c = cell(x, (h0, c0))
    z = x @ cell.x2g.weight.T + cell.x2g.bias + h0 @ cell.h2g.weight.T
    zi, zf, zg, zo = z.chunk(4, 1)
    i = torch.sigmoid(zi + cell.peep[0] * c0)
    f = torch.sigmoid(zf + cell.peep[1] * c0)
    c_exp = f * c0 + i * torch.tanh(zg)
    h_exp = torch.sigmoid(zo + cell.peep[2] * c_exp) * torch.tanh(c_exp)
    assert torch.allclose(c, c_exp) and torch.allclose(h, h_exp)
    assert sum(p.numel() for p in cell.parameters()) == 4 * (5 * 3 + 3) + 4 * 9 + 3 * 3
