"""Spatial autoencoder E and D (paper Sec. 3.1).

E: per block conv k x k -> tanh -> 2x2 max-pool ("CPD" block). D mirrors E: per block
nearest-neighbour x2 upsampling -> conv k x k, with no nonlinearity ("mirrors the encoder,
except for the non-linearity layer").
"""

from __future__ import annotations

import torch
from torch import nn

from stae.model import pointwise
from stae.model.subpixel import upsample_conv2d


class SpatialEncoder(nn.Module):
    """E: (N, C, H, W) -> x_t (N, d, H / 2**depth, W / 2**depth)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], kernel: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for out in channels:
            layers += [nn.Conv2d(c, out, kernel, padding=kernel // 2), nn.Tanh(), nn.MaxPool2d(2)]
            c = out
        self.net = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        # Per block conv -> max-pool -> tanh: the same values as conv -> tanh -> max-pool (tanh
        # is increasing, so the max of the tanh is the tanh of the max), with tanh and its
        # backward on a quarter of the pixels and no full-resolution tanh output stored. The
        # tanh is pointwise.tanh's faster form (the nn.Tanh modules keep the layer indices).
        blocks = list(self.net)
        for conv, pool in zip(blocks[0::3], blocks[2::3]):
            y = conv(y)
            y = pointwise.tanh(pool(y) if torch.is_grad_enabled() and y.requires_grad else max_pool_2x2(y))
        return y


def max_pool_2x2(y: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(y, 2)`` as the maximum of the four strided quarters: the same values,
    about 10x faster on a CPU for NCHW maps (measured at batch 1 and 160), but its backward is
    slower than max_pool2d's, so the encoder uses it only where no gradient is taken."""
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    return torch.maximum(torch.maximum(y[..., 0:h:2, 0:w:2], y[..., 0:h:2, 1:w:2]),
                         torch.maximum(y[..., 1:h:2, 0:w:2], y[..., 1:h:2, 1:w:2]))


class SpatialDecoder(nn.Module):
    """D: (N, d, h, w) -> (N, C, h * 2**depth, w * 2**depth), linear (no output nonlinearity)."""

    def __init__(self, out_channels: int, channels: tuple[int, ...], kernel: int, subpixel: bool = False) -> None:
        super().__init__()
        # Fast path (ModelConfig.subpixel_decoder): each upsample + conv pair as one convolution
        # on the low-resolution map and a pixel shuffle (subpixel.py); the same function.
        self.subpixel = subpixel
        layers: list[nn.Module] = []
        chans = list(reversed(channels)) + [out_channels]  # e.g. (16, 32) -> 32, 16, C
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.subpixel:
            return self.net(x)
        for conv in self.net[1::2]:  # the (Upsample, Conv2d) pairs
            x = upsample_conv2d(x, conv.weight, conv.bias)
        return x
