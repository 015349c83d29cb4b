"""The memory module LSTM (paper Sec. 3.2.1): convolutional LSTM cells, eq. (1), and the
fully-connected LSTM with peepholes of Table 2's ``fc-*`` rows.

The ConvLSTM cell fuses eq. (1)'s eight convolutions into one convolution on ``cat(x, h)``:
``x * w_x + h * w_h == cat(x, h) * cat(w_x, w_h)``. Same function, same parameter count (one
bias per gate, as in the authors' code: the x-convolutions carry the bias, the h-convolutions
none), fewer kernel launches. No peepholes (eq. 1 has none).

Fast paths, chosen in the constructor (ModelConfig ``fft_conv``, ``recompute_steps``):

* ``fft``: the cell's convolution is computed in the frequency domain (``fftconv``). Over a
  clip (:meth:`ConvLSTMMemory.run`) the kernel spectrum is computed once and the spectra of
  x_t for all T steps in one transform; per step one matmul on cat(x^_t, h^_{t-1}) and one
  inverse FFT give the gates. One step at a time (:meth:`ConvLSTMMemory.forward`, streaming)
  uses overlap-save on 8x8 tiles (``fftconv.tiled_conv2d``), whose kernel spectrum is 6x
  smaller, cached while the weights do not change.
* ``recompute``: :meth:`ConvLSTMMemory.run` recomputes each time step in the backward pass
  (``torch.utils.checkpoint``) instead of storing its gate activations: activation memory
  no longer grows with the gates of every step, so tau = 19 fits where tau = 10 did.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from stae.model import fftconv, pointwise
from stae.model.cache import WeightCache

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

    # ------------------------------------------------------------ FFT path
    def spectrum(self, plan: fftconv.FFTPlan) -> torch.Tensor:
        """Spectrum of the fused kernel on cat(x, h): (F, d + d_m, 4 d_m), float32/64."""
        with torch.autocast(self.conv.weight.device.type, enabled=False):
            return fftconv.kernel_spectrum(self.conv.weight, plan)

    def fft_step(self, x_spec: torch.Tensor, h_prev: Optional[torch.Tensor], c_prev: Optional[torch.Tensor],
                 w_spec: torch.Tensor, plan: fftconv.FFTPlan, w_adj: Optional[torch.Tensor] = None,
                 sink: Optional[fftconv.GradSink] = None) -> LayerState:
        """One step of eq. (1) in the frequency domain, on spatial-major maps.

        x_spec (F, B, d): spectrum of x_t (``fftconv.input_spectrum_hwnc``); h_prev, c_prev
        (h, w, B, d_m) or None for the zero state; w_spec from :meth:`spectrum`; ``w_adj`` =
        its adjoint (``fftconv.kernel_adjoint``), computed once per clip for the backward pass;
        ``sink``: the ``fftconv.GradSink`` that ``w_spec`` is attached to, if any. The x- and
        h-parts are mixed in one matmul on cat(x^, h^) and transformed back with one inverse
        FFT. Returns (h_t, c_t), each (h, w, B, d_m).
        """
        with torch.autocast(x_spec.device.type, enabled=False):
            if h_prev is None:
                # Zero state: h^ = 0. Mixing zeros costs little and keeps one full-kernel
                # gradient (a sliced kernel would scatter its gradient into a zero copy).
                h_spec = x_spec.new_zeros(*x_spec.shape[:2], self.hidden)
            else:
                h_spec = fftconv.input_spectrum_hwnc(h_prev, plan)
            z = fftconv.spectral_mix(torch.cat((x_spec, h_spec), dim=2), w_spec, w_adj, sink)
            gates = fftconv.output_from_spectrum_hwnc(z, plan) + self.conv.bias  # (h, w, B, 4 d_m)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(i) * torch.tanh(g)
            if c_prev is not None:
                c = torch.sigmoid(f) * c_prev.to(c.dtype) + c
            h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def fft_step_map(self, x: torch.Tensor, h_prev: Optional[torch.Tensor], c_prev: Optional[torch.Tensor],
                     w_spec: torch.Tensor, plan: fftconv.FFTPlan, w_adj: Optional[torch.Tensor] = None,
                     sink: Optional[fftconv.GradSink] = None) -> LayerState:
        """:meth:`fft_step` from the map x_t (h, w, B, d) instead of its spectrum."""
        return self.fft_step(fftconv.input_spectrum_hwnc(x, plan), h_prev, c_prev, w_spec, plan, w_adj, sink)

    def tiled_spectrum(self, tp: fftconv.TilePlan, bf16: bool = False) -> torch.Tensor:
        """Kernel spectrum for the tiled (overlap-save) FFT convolution of :meth:`forward_tiled`;
        ``bf16``: as ``fftconv.bf16_block_spectrum`` (the mixing then runs in bfloat16)."""
        with torch.autocast(self.conv.weight.device.type, enabled=False):
            k_spec = fftconv.tiled_kernel_spectrum(self.conv.weight, tp)
        return fftconv.bf16_block_spectrum(k_spec) if bf16 else k_spec

    def forward_tiled(self, x: torch.Tensor, state: Optional[LayerState], k_spec: torch.Tensor,
                      tp: fftconv.TilePlan) -> LayerState:
        """:meth:`forward` with the convolution by overlap-save on 8x8 tiles (streaming: the
        kernel spectrum is small and independent of the frame size). Float32 out."""
        h_prev, c_prev = self.zero_state(x) if state is None else state
        inp = torch.cat((_nhwc(x), _nhwc(h_prev.to(x.dtype))), dim=3).permute(0, 3, 1, 2)  # channels-last
        i, f, g, o = fftconv.tiled_conv2d(inp, k_spec, tp, self.conv.bias, groups=4)  # each (N, h, w, C)
        c = torch.sigmoid(f) * _nhwc(c_prev.to(i.dtype)) + torch.sigmoid(i) * pointwise.tanh(g)
        h = torch.sigmoid(o) * pointwise.tanh(c)
        return h.permute(0, 3, 1, 2), c.permute(0, 3, 1, 2)  # (N, C, h, w) views of channels-last memory


def _bf16_autocast(device_type: str) -> bool:
    return torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.bfloat16


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, h, w, C) contiguous: a view when ``x`` is in channels-last memory."""
    return x.permute(0, 2, 3, 1).contiguous()


def _to_hwnc(x: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (h, w, N, C), a view."""
    return x.permute(2, 3, 0, 1)


def _to_nchw(x: torch.Tensor) -> torch.Tensor:
    """(h, w, N, C) -> (N, C, h, w), a view."""
    return x.permute(2, 3, 0, 1)


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

    def __init__(self, in_channels: int, channels: tuple[int, ...], kernel: int, fft: bool = False,
                 recompute: bool = False) -> None:
        super().__init__()
        ins = (in_channels,) + tuple(channels[:-1])
        self.layers = nn.ModuleList(ConvLSTMCell(i, o, kernel) for i, o in zip(ins, channels))
        self.out_channels = channels[-1]
        # Fast paths (module docstring), fixed at construction: ModelConfig.fft_conv and
        # ModelConfig.recompute_steps.
        self.fft = fft
        self.recompute = recompute
        self._tiled_spectra = WeightCache()  # streaming without autograd (cache.py)

    def init_parameters(self, scale: float, forget_bias: float) -> None:
        for layer in self.layers:
            layer.init_parameters(scale, forget_bias)

    def forward(self, x: torch.Tensor, state: Optional[list[LayerState]]) -> tuple[torch.Tensor, list[LayerState]]:
        """One time step: x_t (B, d, h, w), state -> m_t (B, d_m, h, w), new state."""
        if self.fft:
            return self._forward_fft(x, state)
        new_state = []
        inp = x
        for k, layer in enumerate(self.layers):
            h, c = layer(inp, None if state is None else state[k])
            new_state.append((h, c))
            inp = h
        return inp, new_state

    def _forward_fft(self, x: torch.Tensor, state: Optional[list[LayerState]]
                     ) -> tuple[torch.Tensor, list[LayerState]]:
        """One step (streaming) with tiled FFT convolutions. Under bf16 autocast their channel
        mixing runs in bfloat16 (``fftconv.bf16_block_spectrum``), like autocast's matmuls."""
        tp = fftconv.tile_plan(self.layers[0].conv.kernel_size[0])
        bf16 = _bf16_autocast(x.device.type)
        new_state = []
        inp = x
        spectra = self._tiled_spectra.get([layer.conv.weight for layer in self.layers], (tp, bf16),
                                          lambda: [layer.tiled_spectrum(tp, bf16) for layer in self.layers])
        for k, (layer, k_spec) in enumerate(zip(self.layers, spectra)):
            h, c = layer.forward_tiled(inp, None if state is None else state[k], k_spec, tp)
            new_state.append((h, c))
            inp = h
        return inp, new_state

    def run(self, xs: torch.Tensor, state: Optional[list[LayerState]] = None
            ) -> tuple[torch.Tensor, list[LayerState]]:
        """Every step of a clip: x (B, T, d, h, w) -> m (B, T, d_m, h, w) and the final state.

        Equal to calling :meth:`forward` T times. The FFT path runs layer by layer: a layer's
        input at step t does not depend on its own recurrence, so the spectra of its inputs
        are computed for all T steps in one transform, and the kernel spectrum once per call.
        """
        if not self.fft:
            return _run_loop(self, xs, state, self.recompute)
        b, t = xs.shape[:2]
        plan = fftconv.fft_plan(xs.shape[-2], xs.shape[-1], self.layers[0].conv.kernel_size[0])
        # Spatial-major with time-major rows: (h, w, T * B, d). Each step's rows are one block,
        # and the spectra come out frequency-major (F, T * B, d) with no explicit permute.
        inp = xs.permute(3, 4, 1, 0, 2).reshape(*xs.shape[-2:], t * b, xs.shape[2])
        new_state = []
        for k, layer in enumerate(self.layers):
            w_spec = layer.spectrum(plan)  # once per clip, shared by all steps and the batch
            w_adj = sink = None
            if torch.is_grad_enabled():
                w_adj = fftconv.kernel_adjoint(layer.conv.weight, plan)
                sink = fftconv.GradSink()  # the T steps' kernel gradients summed in place
                w_spec = sink.attach(w_spec)
            h, c = (None, None) if state is None else (_to_hwnc(state[k][0]), _to_hwnc(state[k][1]))
            hs = []
            if self.recompute and torch.is_grad_enabled():
                # Each step transforms its own x_t inside the checkpoint: no spectra of the
                # whole clip (nor their gradients) are held at once.
                for x in inp.split(b, dim=2):
                    h, c = _checkpoint(layer.fft_step_map, x, h, c, w_spec, plan, w_adj, sink, use_reentrant=False)
                    hs.append(h)
            else:
                # Spectra of x_t for all steps in one transform, split per step; split rather
                # than indexing: its backward concatenates the T gradients once instead of
                # scattering each into a zero tensor of the whole clip.
                for x_spec in fftconv.input_spectrum_hwnc(inp, plan).split(b, dim=1):
                    h, c = layer.fft_step(x_spec, h, c, w_spec, plan, w_adj, sink)
                    hs.append(h)
            new_state.append((_to_nchw(h), _to_nchw(c)))
            inp = torch.stack(hs, 2).flatten(2, 3)  # (h, w, T * B, d_m)
        # (h, w, T * B, d_m) -> (B, T, d_m, h, w)
        return inp.unflatten(2, (t, b)).permute(3, 2, 4, 0, 1), new_state


def _run_loop(memory: nn.Module, xs: torch.Tensor, state: Optional[list[LayerState]], recompute: bool
              ) -> tuple[torch.Tensor, list[LayerState]]:
    """x (B, T, ...) -> stacked per-step outputs (B, T, ...) and the final state, one
    ``memory(x_t, state)`` call per step; with ``recompute`` each step is recomputed in the
    backward pass instead of storing its activations."""
    ms = []
    for x in xs.unbind(1):  # unbind: its backward stacks the T gradients once
        if recompute and torch.is_grad_enabled():
            m, state = _checkpoint(memory, x, state, use_reentrant=False)
        else:
            m, state = memory(x, state)
        ms.append(m)
    return torch.stack(ms, 1), state


class FCLSTMMemory(nn.Module):
    """Fully-connected LSTM stack on the flattened feature maps.

    x_t (B, d, h, w) -> flatten (B, d h w) -> LSTM layers -> last h (B, n) reshaped to the
    feature grid (B, n / (h w), h, w) for Theta.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], grid: tuple[int, int],
                 recompute: bool = False) -> None:
        super().__init__()
        ins = (in_features,) + tuple(hidden[:-1])
        self.layers = nn.ModuleList(FCLSTMCell(i, o) for i, o in zip(ins, hidden))
        self.grid = grid
        self.out_channels = hidden[-1] // (grid[0] * grid[1])
        self.recompute = recompute  # fast path: ModelConfig.recompute_steps

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

    def run(self, xs: torch.Tensor, state: Optional[list[LayerState]] = None
            ) -> tuple[torch.Tensor, list[LayerState]]:
        """Every step of a clip: x (B, T, d, h, w) -> m (B, T, n / (h w), h, w), final state."""
        return _run_loop(self, xs, state, self.recompute)
