"""Optical flow regressor Theta and the Huber smoothness penalty H (paper Sec. 3.2.2, eqs. 2-3)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from stae.model.cache import WeightCache
from stae.model.fftconv import fft_conv2d, fft_plan, kernel_spectrum

HUBER_DELTA = 1e-3  # delta of eq. (2)-(3)
HUBER_WEIGHT = 1e-2  # w_H of eq. (5)


class FlowRegressor(nn.Module):
    """Theta: memory output m_t (B, d_m, h, w) -> backward flow T_t (B, 2, h, w) in pixels.

    Two k x k convolutions with ``hidden`` filters (no nonlinearity between them, as in the
    authors' code), an optional 1x1 convolution initialised to zero (training starts from the
    identity warp), then one trainable scale per flow channel (the two "missing" parameters of
    Table 1's 21,162) and an optional clamp.
    """

    def __init__(self, in_channels: int, kernel: int = 15, hidden: int = 2, use_1x1: bool = True,
                 scale_init: float = 1.0, clamp: Optional[float] = None, fft: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, hidden, kernel, padding=kernel // 2),
            nn.Conv2d(hidden, 2, kernel, padding=kernel // 2),
        ]
        if use_1x1:
            layers.append(nn.Conv2d(2, 2, 1))
        self.net = nn.Sequential(*layers)
        self.scale = nn.Parameter(torch.full((2,), float(scale_init)))
        self.clamp = clamp
        self.use_1x1 = use_1x1
        # Fast path (ModelConfig.fft_conv): the two k x k convolutions through FFTs, with the
        # kernel spectra kept while streaming (cache.py).
        self.fft = fft
        self._spectra = [WeightCache() for _ in layers[:2]]

    def init_parameters(self) -> None:
        """Sec. 4: xavier for the convolutions; the 1x1 conv starts at zero (identity warp)."""
        for m in self.net:
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        if self.use_1x1:
            nn.init.zeros_(self.net[-1].weight)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        if self.fft:
            y = m
            for layer, cache in zip(self.net[:2], self._spectra):  # the large kernels through FFTs
                plan = fft_plan(y.shape[-2], y.shape[-1], layer.kernel_size[0])
                spec = cache.get([layer.weight], plan, lambda: kernel_spectrum(layer.weight, plan))
                y = fft_conv2d(y, layer.weight, layer.bias, spec)
            y = self.net[2](y) if self.use_1x1 else y
        else:
            y = self.net(m)
        flow = y * self.scale.view(1, 2, 1, 1)
        if self.clamp is not None:
            flow = flow.clamp(-self.clamp, self.clamp)
        return flow


def flow_gradient(flow: torch.Tensor) -> torch.Tensor:
    """nabla T: central differences of each flow channel, (B, 2, h, w) -> (B, 4, h, w).

    The paper's fixed 2x3x3 filter on a 5-point stencil: for each channel the x and y central
    differences ``f(p+1) - f(p-1)`` (the stencil's four neighbours). Borders are replicated,
    so that a constant flow has zero gradient everywhere (zero padding would penalise any
    non-zero flow at the border and bias the flow towards zero there).
    """
    f = F.pad(flow, (1, 1, 1, 1), mode="replicate")
    dx = f[:, :, 1:-1, 2:] - f[:, :, 1:-1, :-2]
    dy = f[:, :, 2:, 1:-1] - f[:, :, :-2, 1:-1]
    return torch.cat((dx, dy), dim=1)


def huber(a: torch.Tensor, delta: float = HUBER_DELTA) -> torch.Tensor:
    """Eq. (2) element-wise: 0.5 a^2 for |a| <= delta, delta (|a| - delta / 2) otherwise.

    Its autograd derivative is eq. (3): a for |a| <= delta, delta sign(a) otherwise.
    """
    absa = a.abs()
    return torch.where(absa <= delta, 0.5 * a * a, delta * (absa - 0.5 * delta))


def huber_smoothness(flow: torch.Tensor, delta: float = HUBER_DELTA) -> torch.Tensor:
    """H(nabla T): the mean of eq. (2) over the elements of the flow gradient (a scalar).

    The mean (rather than the sum) matches the authors' code, which divides by the number of
    elements, and keeps w_H = 1e-2 meaningful next to per-pixel data terms.
    """
    return huber(flow_gradient(flow), delta).mean()
