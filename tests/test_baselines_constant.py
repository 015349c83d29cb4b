"""Table 2's constant-probability baseline: p* = mean pixel value, and its BCE."""

import math

import pytest
import torch

from stae.baselines import constant_bce, constant_probability
from stae.errors import StaeError
from stae.metrics import bce


def test_half_ones_gives_ln2():
    target = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)
    p = constant_probability(target)
    assert p == 0.5
    assert constant_bce(p, target) == pytest.approx(math.log(2), abs=1e-12)


def test_equals_metric_on_a_constant_map():
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(3, 4, 1, 8, 8, generator=g) < 0.2).float()
    for p in (0.05, 0.2, 0.7):
        assert constant_bce(p, target) == pytest.approx(bce(torch.full(target.shape, p, dtype=torch.float64), target), rel=1e-10)


def test_mean_is_the_best_constant():
    g = torch.Generator().manual_seed(1)
    frames = (torch.rand(2, 5, 1, 16, 16, generator=g) < 0.13).float()
    p = constant_probability(frames)
    best = constant_bce(p, frames)
    # the entropy of a Bernoulli(p) variable: the minimum over all constants
    assert best == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)), rel=1e-12)
    for q in (p - 0.02, p + 0.02, 0.5):
        assert constant_bce(q, frames) > best


def test_all_zero_target_is_clamped_not_infinite():
    target = torch.zeros(1, 1, 4, 4)
    assert constant_probability(target) == 0.0
    assert 0 < constant_bce(0.0, target) < 1e-6
    assert constant_bce(1.0, target) == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_empty_is_an_error():
    with pytest.raises(StaeError):
        constant_probability(torch.zeros(0))
    with pytest.raises(StaeError):
        constant_bce(0.5, torch.zeros(0))
