"""The flow of an observed pair of frames, refined from the model's prediction: the "observed"
mode of label propagation (docs/propagation.md).

The model's flow ``T_t`` is a *prediction*: it is made before frame t+1 is seen, on the
feature grid. Once frame t+1 is there, the flow that carries frame t onto it can be measured.
:func:`refine_flow` starts from the model's flow (upsampled to full resolution) and takes a
few Adam steps per pixel on the paper's own objective, at full resolution:

    sum_p rho(frame_{t+1}(p) - frame_t(p + T(p)))  +  lambda * sum Huber(grad T)

(``rho`` the Charbonnier penalty sqrt(r^2 + eps^2), a robust photometric error; the Huber
smoothness term is the paper's eq. 5 penalty), coarse to fine: the two frames are first
blurred (Gaussian sigma 2, then 1, then none) so that a start a few pixels off still feels the
pull of the right match. All pairs of a batch are refined at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stae.model.warp import warp


@dataclass(frozen=True)
class RefineOptions:
    """How :func:`refine_flow` refines (chosen on validation sequences, docs/propagation.md)."""

    steps: int = 60  # Adam steps per blur level
    blur: tuple[float, ...] = (2.0, 1.0, 0.0)  # Gaussian sigma of each level, coarse to fine
    smoothness: float = 0.05  # lambda: weight of the Huber smoothness term
    huber_delta: float = 0.5  # pixels
    lr: float = 0.2  # Adam step size, pixels
    adam_eps: float = 1e-2  # gradients far below this (float noise where the frames agree) move nothing
    charbonnier_eps: float = 1e-2


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with replicated borders; sigma 0 returns ``x``."""
    if sigma <= 0:
        return x
    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype) ** 2 / (2 * sigma * sigma))
    k = (k / k.sum()).to(x.device)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def flow_objective(flow: torch.Tensor, target: torch.Tensor, source: torch.Tensor, o: RefineOptions) -> torch.Tensor:
    """The Charbonnier photometric error of ``warp(source, flow)`` against ``target`` (mean
    over channels) plus ``o.smoothness`` x the Huber penalty of the flow's horizontal and
    vertical differences, summed over pixels and pairs: each pixel's gradient is on the scale of
    the image gradient whatever the frame size, and (Adam being element-wise) each pair is
    refined as it would be alone."""
    r = warp(source, flow, padding_mode="border") - target
    photometric = torch.sqrt(r * r + o.charbonnier_eps ** 2).mean(1).sum()
    dx = flow[..., :, 1:] - flow[..., :, :-1]
    dy = flow[..., 1:, :] - flow[..., :-1, :]
    smooth = (F.huber_loss(dx, torch.zeros_like(dx), delta=o.huber_delta, reduction="sum")
              + F.huber_loss(dy, torch.zeros_like(dy), delta=o.huber_delta, reduction="sum"))
    return photometric + o.smoothness * smooth


def refine_flow(target: torch.Tensor, source: torch.Tensor, init: torch.Tensor,
                options: RefineOptions = RefineOptions()) -> torch.Tensor:
    """Backward flow (B, 2, H, W) in pixels with ``target(p) ~ source(p + flow(p))`` for frames
    (B, C, H, W), refined from ``init`` (B, 2, H, W) (module doc). Runs with gradients enabled
    whatever the caller's mode; returns a detached tensor."""
    if target.shape != source.shape or init.shape != (target.shape[0], 2, *target.shape[-2:]):
        raise ValueError(f"refine_flow: frames {tuple(target.shape)} / {tuple(source.shape)} and flow "
                         f"{tuple(init.shape)} do not match")
    target, source = target.float(), source.float()
    with torch.enable_grad():
        flow = init.detach().float().clone().requires_grad_(True)
        opt = torch.optim.Adam([flow], lr=options.lr, eps=options.adam_eps)
        for sigma in options.blur:
            t, s = gaussian_blur(target, sigma), gaussian_blur(source, sigma)
            for _ in range(options.steps):
                opt.zero_grad(set_to_none=True)
                flow_objective(flow, t, s, options).backward()
                opt.step()
    return flow.detach()
