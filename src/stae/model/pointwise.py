"""Pointwise functions in faster forms with the same values up to float rounding.

``torch.tanh`` runs about 4x slower than ``torch.sigmoid`` on the CPUs measured here
(float32, one thread, a 45x32x32 map: 100 vs 23 microseconds for the form below), and a
streamed frame computes three tanh maps. ``tanh(x) = 2 sigmoid(2x) - 1`` exactly; in float32
the difference to ``torch.tanh`` is at most about 2e-7 (absolute), the size of the FFT
convolutions' own rounding. Used by the encoder E (every path: its values must not depend on
whether autograd is on) and by the streamed memory step.
"""

from __future__ import annotations

import torch


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``torch.tanh(x)`` as ``2 sigmoid(2x) - 1`` (differentiable; float64-exact to ~1e-16)."""
    return torch.sigmoid(2 * x) * 2 - 1
