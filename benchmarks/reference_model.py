"""The reference implementation the benchmarks compare against: the vanilla model as the
authors' released Lua/Torch code computes it, in fp32, one sequence per step.

* ConvLSTM with eight separate gate convolutions: per gate one convolution on x_t with a
  bias and one on h_{t-1} without (i, f, o sigmoid; c~ tanh; no peepholes);
* the whole pipeline E -> memory -> Theta -> warp -> D runs once per time step (the Lua
  code's per-step sequencer), not batched over time.

Built from a :class:`stae.model.SpatioTemporalAutoencoder` so that it computes the same
function with the same parameters (``python benchmarks/reference_model.py`` checks it in
float64; tests/test_fast_paths_exact.py runs that check); E, Theta,
GG+S and D are the model's own modules, only the memory cell and the loop differ.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from stae.model.autoencoder import SpatioTemporalAutoencoder, StaeOutput, build_model
from stae.model.config import DIRECT
from stae.model.warp import warp

GATES = ("i", "f", "g", "o")  # order of the fused convolution's output channels


class ReferenceConvLSTMCell(nn.Module):
    """Eq. (1) with eight convolutions, as in the authors' code."""

    def __init__(self, in_channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.hidden = hidden
        p = kernel // 2
        self.wx = nn.ModuleDict({g: nn.Conv2d(in_channels, hidden, kernel, padding=p) for g in GATES})
        self.wh = nn.ModuleDict({g: nn.Conv2d(hidden, hidden, kernel, padding=p, bias=False) for g in GATES})

    @classmethod
    def from_fused(cls, cell: nn.Module) -> "ReferenceConvLSTMCell":
        """Split a fused :class:`stae.model.memory.ConvLSTMCell` (one conv on cat(x, h))."""
        conv = cell.conv
        d, n = cell.in_channels, cell.hidden
        ref = cls(d, n, conv.kernel_size[0])
        with torch.no_grad():
            for k, g in enumerate(GATES):
                rows = slice(k * n, (k + 1) * n)
                ref.wx[g].weight.copy_(conv.weight[rows, :d])
                ref.wx[g].bias.copy_(conv.bias[rows])
                ref.wh[g].weight.copy_(conv.weight[rows, d:])
        return ref.to(conv.weight.dtype)

    def forward(self, x: torch.Tensor, state):
        if state is None:
            z = x.new_zeros(x.shape[0], self.hidden, *x.shape[-2:])
            state = (z, z)
        h_prev, c_prev = state
        a = {g: self.wx[g](x) + self.wh[g](h_prev) for g in GATES}
        i, f, o = torch.sigmoid(a["i"]), torch.sigmoid(a["f"]), torch.sigmoid(a["o"])
        c = f * c_prev + i * torch.tanh(a["g"])
        h = o * torch.tanh(c)
        return h, c


class ReferenceModel(nn.Module):
    """The authors' computation of the vanilla model, per time step (see module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.config.memory != "conv":
            raise ValueError("the reference implementation is the ConvLSTM model")
        direct = SpatioTemporalAutoencoder(model.config.replace(**DIRECT))  # the plain layers
        direct.load_state_dict(model.state_dict())
        direct.to(next(model.parameters()).dtype)
        self.encoder, self.flow, self.decoder = direct.encoder, direct.flow, direct.decoder
        model = direct
        self.cells = nn.ModuleList(ReferenceConvLSTMCell.from_fused(c) for c in model.memory.layers)
        self.output = model.config.output

    def forward(self, clip: torch.Tensor, first_output: int = 0) -> StaeOutput:
        """Every step's prediction, as the authors' code computes them (the head runs at every
        step); ``first_output``: return steps ``first_output ..`` only, like stae's ``forward``."""
        state = [None] * len(self.cells)
        logits, flows = [], []
        for t in range(clip.shape[1]):
            x = self.encoder(clip[:, t])
            inp = x
            for k, cell in enumerate(self.cells):
                state[k] = cell(inp, state[k])
                inp = state[k][0]
            flow = self.flow(inp)
            logits.append(self.decoder(warp(x, flow)))
            flows.append(flow)
        lg = torch.stack(logits[first_output:], 1)
        frames = torch.sigmoid(lg) if self.output == "sigmoid" else lg
        return StaeOutput(frames, torch.stack(flows[first_output:], 1), lg)


@torch.no_grad()
def check() -> float:
    """Largest relative difference between the reference and stae's vanilla model on a random
    float64 clip (same weights): the reference computes the same function."""
    torch.manual_seed(0)
    base = build_model("conv-1enc-1lstm").double()
    ref = ReferenceModel(base)
    n_ref, n_base = (sum(p.numel() for p in m.parameters()) for m in (ref, base))
    if n_ref != n_base or n_base != 703_651:
        raise SystemExit(f"parameter counts differ: reference {n_ref}, stae {n_base} (paper 703,651)")
    clip = torch.rand(2, 4, 1, 16, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    worst = 0.0
    for a, b in zip(ref(clip), base(clip)):
        worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)))
    return worst


if __name__ == "__main__":
    rel = check()
    print(f"reference == stae: largest relative difference {rel:.2e} (703,651 parameters each)")
    sys.exit(0 if rel < 1e-12 else 1)
