"""The memory module LSTM (paper Sec. 3.2.1): convolutional LSTM cells, eq. (1), and the
fully-connected LSTM with peepholes of Table 2's ``fc-*`` rows.

The ConvLSTM cell fuses eq. (1)'s eight convolutions into one convolution on ``cat(x, h)``:
``x * w_x + h * w_h == cat(x, h) * cat(w_x, w_h)``. Same function, same parameter count (one
bias per gate, as in the authors' code: the x-convolutions carry the bias, the h-convolutions
none), fewer kernel launches. No peepholes (eq. 1 has none).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

# A layer's state: (h, c). The stack's state: one per layer.
LayerState = tuple[torch.Tensor, torch.Tensor]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer, eq. (1). Gates in the order i, f, c~, o along the channel axis."""

    def __init__(self, in_channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def init_parameters(self, scale: float, forget_bias: float) -> None:
        """Sec. 4: weights ~ U(-scale, scale); forget-gate bias ``forget_bias``, others 0."""
        nn.init.uniform_(self.conv.weight, -scale, scale)
        with torch.no_grad():
            self.conv.bias.zero_()
            self.conv.bias[self.hidden : 2 * self.hidden] = forget_bias

    def zero_state(self, x: torch.Tensor) -> LayerState:
        b, _, h, w = x.shape
        z = x.new_zeros(b, self.hidden, h, w)
        return z, z

    def forward(self, x: torch.Tensor, state: Optional[LayerState]) -> LayerState:
        """x_t (B, d, h, w), (h_{t-1}, c_{t-1}) -> (h_t, c_t), each (B, d_m, h, w)."""
        h_prev, c_prev = self.zero_state(x) if state is None else state
        gates = self.conv(torch.cat((x, h_prev), dim=1))
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class FCLSTMCell(nn.Module):
    """Fully-connected LSTM with peepholes on i, f, o (Graves 2013), as in the ``fc-*`` rows.

    x->gates with bias, h->gates without bias, three peephole vectors:
    4 (n_in n + n) + 4 n^2 + 3 n parameters.
    """

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.x2g = nn.Linear(in_features, 4 * hidden)
        self.h2g = nn.Linear(hidden, 4 * hidden, bias=False)
        self.peep = nn.Parameter(torch.zeros(3, hidden))  # w_ci, w_cf, w_co

    def init_parameters(self, scale: float, forget_bias: float) -> None:
        for p in (self.x2g.weight, self.h2g.weight, self.peep):
            nn.init.uniform_(p, -scale, scale)
        with torch.no_grad():
            self.x2g.bias.zero_()
            self.x2g.bias[self.hidden : 2 * self.hidden] = forget_bias

    def forward(self, x: torch.Tensor, state: Optional[LayerState]) -> LayerState:
        """x (B, n_in), (h, c) (B, n) -> (h, c)."""
        if state is None:
            z = x.new_zeros(x.shape[0], self.hidden)
            state = (z, z)
        h_prev, c_prev = state
        i, f, g, o = (self.x2g(x) + self.h2g(h_prev)).chunk(4, dim=1)
        i = torch.sigmoid(i + self.peep[0] * c_prev)
        f = torch.sigmoid(f + self.peep[1] * c_prev)
        c = f * c_prev + i * torch.tanh(g)
        o = torch.sigmoid(o + self.peep[2] * c)
        return o * torch.tanh(c), c


class ConvLSTMMemory(nn.Module):
    """Stack of ConvLSTM layers: x_t (B, d, h, w) -> m_t = h of the last layer (B, d_m, h, w)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], kernel: int) -> None:
        super().__init__()
        ins = (in_channels,) + tuple(channels[:-1])
        self.layers = nn.ModuleList(ConvLSTMCell(i, o, kernel) for i, o in zip(ins, channels))
        self.out_channels = channels[-1]

    def init_parameters(self, scale: float, forget_bias: float) -> None:
        for layer in self.layers:
            layer.init_parameters(scale, forget_bias)

    def forward(self, x: torch.Tensor, state: Optional[list[LayerState]]) -> tuple[torch.Tensor, list[LayerState]]:
        new_state = []
        inp = x
        for k, layer in enumerate(self.layers):
            h, c = layer(inp, None if state is None else state[k])
            new_state.append((h, c))
            inp = h
        return inp, new_state


class FCLSTMMemory(nn.Module):
    """Fully-connected LSTM stack on the flattened feature maps.

    x_t (B, d, h, w) -> flatten (B, d h w) -> LSTM layers -> last h (B, n) reshaped to the
    feature grid (B, n / (h w), h, w) for Theta.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], grid: tuple[int, int]) -> None:
        super().__init__()
        ins = (in_features,) + tuple(hidden[:-1])
        self.layers = nn.ModuleList(FCLSTMCell(i, o) for i, o in zip(ins, hidden))
        self.grid = grid
        self.out_channels = hidden[-1] // (grid[0] * grid[1])

    def init_parameters(self, scale: float, forget_bias: float) -> None:
        for layer in self.layers:
            layer.init_parameters(scale, forget_bias)

    def forward(self, x: torch.Tensor, state: Optional[list[LayerState]]) -> tuple[torch.Tensor, list[LayerState]]:
        inp = x.flatten(1)
        new_state = []
        for k, layer in enumerate(self.layers):
            h, c = layer(inp, None if state is None else state[k])
            new_state.append((h, c))
            inp = h
        return inp.view(x.shape[0], self.out_channels, *self.grid), new_state
