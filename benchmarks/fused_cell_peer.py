"""The fused-cell peer of the throughput benchmarks (issue 16): the vanilla model as a PyTorch
user would write it with a common ConvLSTM cell.

* The cell is written as the most used PyTorch ConvLSTM cells are (e.g. ndrplz/ConvLSTM_pytorch):
  ONE fused 7x7 convolution per step on ``cat(x_t, h_{t-1})`` (77 -> 180 channels), split into
  the i, f, o, g gates (that cell's order), zero initial state;
* E (conv 7x7 -> tanh -> max-pool) runs on all frames of the clip in one batch (B*T), the
  cell loops over time;
* Theta (15x15 -> 15x15 -> 1x1, one scale per flow channel), the warp (``F.grid_sample``,
  align_corners=True, backward flow in pixels) and D (nearest x2 upsampling -> 7x7 conv) run on
  the LAST step only, as a user training on the last prediction writes it;
* plain direct convolutions (``nn.Conv2d``), fp32, no stae code path: the module imports
  nothing of stae's model; stae is used only to copy weights for the check, and for the loss
  and optimiser in :func:`make_peer_step` (the same eq. (5) / RMSprop as stae's ``train_step``
  in bench_train.py, on the last prediction).

It has the vanilla model's 703,651 parameters and computes stae's last-step output on the same
weights: ``python benchmarks/fused_cell_peer.py`` checks both in float64 (the tests run that
script as a subprocess; nothing imports it but the benchmarks).
"""

from __future__ import annotations

import sys
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn


class PeerOutput(NamedTuple):
    """The last step only: logits (B, C, H, W) of frame tau + 1 and the flow (B, 2, h, w)."""

    logits: torch.Tensor
    flow: torch.Tensor


class FusedConvLSTMCell(nn.Module):
    """A ConvLSTM cell as common PyTorch code writes it: one conv on cat(x, h) -> i, f, o, g."""

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.conv = nn.Conv2d(input_dim + hidden_dim, 4 * hidden_dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        h_cur, c_cur = state
        combined_conv = self.conv(torch.cat([x, h_cur], dim=1))
        cc_i, cc_f, cc_o, cc_g = torch.split(combined_conv, self.hidden_dim, dim=1)
        i = torch.sigmoid(cc_i)
        f = torch.sigmoid(cc_f)
        o = torch.sigmoid(cc_o)
        g = torch.tanh(cc_g)
        c_next = f * c_cur + i * g
        h_next = o * torch.tanh(c_next)
        return h_next, c_next

    def init_hidden(self, x: torch.Tensor):
        b, _, h, w = x.shape
        return (x.new_zeros(b, self.hidden_dim, h, w), x.new_zeros(b, self.hidden_dim, h, w))


class FusedCellPeer(nn.Module):
    """Vanilla-shaped predictor: E -> fused-cell ConvLSTM over tau steps -> Theta, warp, D on
    the last step. ``padding_mode``: what the sampler reads outside the map (stae's
    ``warp_padding``)."""

    def __init__(self, in_channels: int = 1, features: int = 32, hidden: int = 45, kernel: int = 7,
                 flow_kernel: int = 15, padding_mode: str = "zeros") -> None:
        super().__init__()
        p = kernel // 2
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, features, kernel, padding=p), nn.Tanh(), nn.MaxPool2d(2))
        self.cell = FusedConvLSTMCell(features, hidden, kernel)
        self.theta = nn.Sequential(nn.Conv2d(hidden, 2, flow_kernel, padding=flow_kernel // 2),
                                   nn.Conv2d(2, 2, flow_kernel, padding=flow_kernel // 2), nn.Conv2d(2, 2, 1))
        self.flow_scale = nn.Parameter(torch.ones(2))
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                     nn.Conv2d(features, in_channels, kernel, padding=p))
        self.padding_mode = padding_mode

    def head(self, x: torch.Tensor, h: torch.Tensor) -> PeerOutput:
        """Theta on the memory output, warp the features x by that flow, decode."""
        flow = self.theta(h) * self.flow_scale.view(1, 2, 1, 1)
        n, _, hh, ww = x.shape
        ys, xs = torch.meshgrid(torch.arange(hh, dtype=x.dtype), torch.arange(ww, dtype=x.dtype), indexing="ij")
        gx = (xs + flow[:, 0]) * (2.0 / (ww - 1)) - 1.0
        gy = (ys + flow[:, 1]) * (2.0 / (hh - 1)) - 1.0
        warped = F.grid_sample(x, torch.stack((gx, gy), dim=-1), mode="bilinear", padding_mode=self.padding_mode,
                               align_corners=True)
        return PeerOutput(self.decoder(warped), flow)

    def forward(self, clip: torch.Tensor) -> PeerOutput:
        """clip (B, tau, C, H, W) -> the prediction of frame tau + 1 and its flow."""
        b, t = clip.shape[:2]
        xs = self.encoder(clip.flatten(0, 1)).unflatten(0, (b, t))
        state = self.cell.init_hidden(xs[:, 0])
        for k in range(t):
            state = self.cell(xs[:, k], state)
        return self.head(xs[:, -1], state[0])

    def step(self, frame: torch.Tensor, state: Optional[tuple[torch.Tensor, torch.Tensor]] = None):
        """Streaming: one frame (B, C, H, W) -> (logits of the next frame, flow, new state)."""
        x = self.encoder(frame)
        state = self.cell(x, self.cell.init_hidden(x) if state is None else state)
        out = self.head(x, state[0])
        return out.logits, out.flow, state


def from_stae(model: nn.Module) -> FusedCellPeer:
    """A peer holding a stae vanilla model's weights (stae's gate order i, f, g, o -> i, f, o, g)."""
    cfg = model.config
    if cfg.memory != "conv" or len(cfg.memory_channels) != 1 or len(cfg.encoder_channels) != 1 or not cfg.flow_1x1:
        raise ValueError("the fused-cell peer mirrors the vanilla model (one CPD block, one ConvLSTM layer)")
    d, n = cfg.feature_channels, cfg.memory_channels[0]
    sd = model.state_dict()
    peer = FusedCellPeer(cfg.in_channels, d, n, cfg.memory_kernel, cfg.flow_kernel, cfg.warp_padding)
    peer = peer.to(sd["memory.layers.0.conv.weight"].dtype)  # before copying: no float32 rounding
    rows = torch.cat([torch.arange(k * n, (k + 1) * n) for k in (0, 1, 3, 2)])
    with torch.no_grad():
        peer.encoder[0].weight.copy_(sd["encoder.net.0.weight"])
        peer.encoder[0].bias.copy_(sd["encoder.net.0.bias"])
        peer.cell.conv.weight.copy_(sd["memory.layers.0.conv.weight"][rows])
        peer.cell.conv.bias.copy_(sd["memory.layers.0.conv.bias"][rows])
        for k in range(3):
            peer.theta[k].weight.copy_(sd[f"flow.net.{k}.weight"])
            peer.theta[k].bias.copy_(sd[f"flow.net.{k}.bias"])
        peer.flow_scale.copy_(sd["flow.scale"])
        peer.decoder[1].weight.copy_(sd["decoder.net.1.weight"])
        peer.decoder[1].bias.copy_(sd["decoder.net.1.bias"])
    return peer


def make_peer_step(peer: FusedCellPeer, clip: torch.Tensor, cfg, weights) -> Callable[[], float]:
    """One optimiser step of the peer on ``clip`` (B, tau + 1, C, H, W): stae's loss
    (``stae.losses.objective`` with ``weights``) on the last prediction, stae's optimiser of
    ``cfg.train``, zero_grad / backward / step as a user's loop. Returns the loss."""
    from stae.losses import objective
    from stae.training import make_optimizer

    opt = make_optimizer(peer.parameters(), cfg.train)
    tau = clip.shape[1] - 1

    def step() -> float:
        out = peer(clip[:, :tau])
        frame = out.logits.unsqueeze(1)
        terms = objective(frame, frame, out.flow.unsqueeze(1), clip[:, tau:], weights)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        return float(terms["total"].detach())

    return step


@torch.no_grad()
def check() -> tuple[int, float]:
    """(parameters, largest relative difference of the last-step logits and flow from stae's
    vanilla model on the same weights), float64, with a non-zero Theta 1x1 (a real warp)."""
    from stae.model import build_model
    from stae.model.config import DIRECT

    torch.manual_seed(0)
    base = build_model("conv-1enc-1lstm", **DIRECT).double()
    for p in base.flow.parameters():
        p.add_(0.05 * torch.randn_like(p))
    peer = from_stae(base)
    count = sum(p.numel() for p in peer.parameters())
    clip = torch.rand(2, 5, 1, 16, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ref = base(clip)
    out = peer(clip)
    worst = 0.0
    for a, b in ((out.logits, ref.logits[:, -1]), (out.flow, ref.flows[:, -1])):
        worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)))
    return count, worst


if __name__ == "__main__":
    n, rel = check()
    print(f"fused-cell peer: {n:,} parameters (vanilla: 703,651); last-step output == stae's: "
          f"largest relative difference {rel:.2e}")
    sys.exit(0 if n == 703_651 and rel < 1e-12 else 1)
