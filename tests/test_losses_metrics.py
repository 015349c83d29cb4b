"""Losses (eq. 5, BCE) and evaluation metrics: values the maths fixes."""

import math

import pytest
import torch

from stae import metrics
from stae.losses import LossWeights, bce_with_logits, gradient_l2, image_gradient, intensity_l2, objective


def test_image_gradient_of_a_ramp():
    img = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 4, 5)
    g = image_gradient(img)
    assert g.shape == (1, 2, 4, 5)
    assert torch.equal(g[0, 0, :, 1:-1], torch.full((4, 3), 2.0))  # x: f(x+1) - f(x-1)
    assert torch.equal(g[0, 0, :, 0], torch.full((4,), 1.0))  # zero padding at the border
    assert torch.equal(g[0, 1, 1:-1], torch.zeros(2, 5))  # y: constant along y


def test_bce_from_logits_is_stable_and_exact():
    logits = torch.tensor([-200.0, -1.0, 0.0, 2.0, 300.0])
    target = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    got = bce_with_logits(logits, target)
    p = torch.sigmoid(logits[1:4].double())
    t = target[1:4].double()
    middle = -(t * p.log() + (1 - t) * (1 - p).log())
    expect = (200.0 + middle.sum() + 300.0) / 5
    assert torch.isfinite(got) and math.isclose(float(got), float(expect), rel_tol=1e-6)


def test_objective_terms_and_weights():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 1, 8, 8), torch.rand(2, 3, 1, 8, 8)
    flows = torch.randn(2, 3, 2, 4, 4)
    t = objective(pred, pred, flows, target, LossWeights(intensity=2.0, gradient=0.5, huber=0.1))
    assert set(t) == {"intensity", "gradient", "huber", "total"}
    assert torch.isclose(t["intensity"], intensity_l2(pred, target))
    assert torch.isclose(t["gradient"], gradient_l2(pred, target))
    assert torch.isclose(t["total"], 2 * t["intensity"] + 0.5 * t["gradient"] + 0.1 * t["huber"])
    released = objective(pred, pred, flows, target, LossWeights.released_code())
    assert set(released) == {"gradient", "total"}
    binary = objective(pred, pred, flows, target.round(), LossWeights.binary())
    assert set(binary) == {"bce", "huber", "total"}


def test_metrics_known_values():
    a = torch.zeros(1, 1, 1, 4, 4, dtype=torch.float64)
    b = torch.full((1, 1, 1, 4, 4), 0.1, dtype=torch.float64)
    assert math.isclose(metrics.l2(a, b), 0.01, rel_tol=1e-9)
    assert math.isclose(metrics.psnr(a, b), 20.0, rel_tol=1e-9)
    assert math.isclose(metrics.mse_per_frame(a, b), 16 * 0.01, rel_tol=1e-9)
    assert math.isclose(metrics.mae_per_frame(a, b), 16 * 0.1, rel_tol=1e-9)
    assert metrics.gradient_l2(b, b) == 0
    x = torch.rand(2, 1, 16, 16)
    assert math.isclose(metrics.ssim(x, x), 1.0, rel_tol=1e-9)
    assert metrics.ssim(x, 1 - x) < 0.5
    # BCE of a constant 0.5 guess is log 2 per pixel.
    assert math.isclose(metrics.bce(torch.full((10,), 0.5), torch.rand(10).round()), math.log(2), rel_tol=1e-9)


def test_epe_and_iou():
    f = torch.zeros(1, 2, 2, 2)
    g = torch.zeros(1, 2, 2, 2)
    g[:, 0] = 3.0
    g[:, 1] = 4.0
    assert metrics.epe(f, g) == 5.0
    mask = torch.tensor([[[True, False], [False, False]]])
    assert metrics.epe(f, g, mask) == 5.0
    pred = torch.tensor([[0, 1, 1], [2, 2, 0]])
    true = torch.tensor([[0, 1, 0], [2, 2, 2]])
    # class 1: |{(0,1)}| / |{(0,1),(0,2)}| = 1/2; class 2: 2/3.
    assert metrics.iou(pred, true) == pytest.approx((0.5 + 2 / 3) / 2)
