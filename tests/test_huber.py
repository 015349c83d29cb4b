"""The Huber smoothness term (eqs. 2-3): its gradient equals eq. (3) through the stencil."""

import numpy as np
import torch

from stae.model.flow import HUBER_DELTA, flow_gradient, huber, huber_smoothness


def test_huber_values_eq2():
    d = 0.5
    a = torch.tensor([-2.0, -0.5, -0.1, 0.0, 0.3, 0.5, 1.5])
    expect = torch.tensor([0.5 * (2 - 0.25), 0.125, 0.005, 0.0, 0.045, 0.125, 0.5 * (1.5 - 0.25)])
    assert torch.allclose(huber(a, d), expect)


def test_huber_derivative_is_eq3():
    d = 1e-3
    a = torch.tensor([-5e-3, -1e-3, -4e-4, 0.0, 2e-4, 1e-3, 7e-3], dtype=torch.float64, requires_grad=True)
    huber(a, d).sum().backward()
    expect = torch.where(a.abs() <= d, a, d * a.sign()).detach()
    assert torch.equal(a.grad, expect)


def _stencil_by_hand(f: np.ndarray) -> np.ndarray:
    """Central differences with replicated borders, written out pixel by pixel."""
    c, h, w = f.shape
    out = np.zeros((2 * c, h, w))
    for k in range(c):
        for y in range(h):
            for x in range(w):
                out[k, y, x] = f[k, y, min(x + 1, w - 1)] - f[k, y, max(x - 1, 0)]
                out[c + k, y, x] = f[k, min(y + 1, h - 1), x] - f[k, max(y - 1, 0), x]
    return out


def test_flow_gradient_matches_stencil():
    f = np.random.default_rng(0).normal(size=(2, 4, 5))
    got = flow_gradient(torch.from_numpy(f)[None])[0].numpy()
    assert np.allclose(got, _stencil_by_hand(f))


def test_gradient_wrt_flow_equals_eq3_backpropagated_by_hand():
    rng = np.random.default_rng(0)
    # Mix of small and large differences so both branches of eq. (3) occur.
    f = rng.normal(scale=2e-3, size=(2, 4, 5))
    flow = torch.from_numpy(f)[None].requires_grad_(True)
    huber_smoothness(flow, HUBER_DELTA).backward()

    a = _stencil_by_hand(f)
    g = np.where(np.abs(a) <= HUBER_DELTA, a, HUBER_DELTA * np.sign(a)) / a.size  # eq. (3), mean
    assert (np.abs(a) <= HUBER_DELTA).any() and (np.abs(a) > HUBER_DELTA).any()
    expect = np.zeros_like(f)
    c, h, w = f.shape
    for k in range(c):  # transpose of the stencil: each difference feeds back to its two pixels
        for y in range(h):
            for x in range(w):
                expect[k, y, min(x + 1, w - 1)] += g[k, y, x]
                expect[k, y, max(x - 1, 0)] -= g[k, y, x]
                expect[k, min(y + 1, h - 1), x] += g[c + k, y, x]
                expect[k, max(y - 1, 0), x] -= g[c + k, y, x]
    assert np.allclose(flow.grad[0].numpy(), expect, rtol=1e-12, atol=1e-15)


def test_constant_flow_costs_nothing():
    flow = torch.full((1, 2, 6, 6), 3.0)
    assert huber_smoothness(flow) == 0
