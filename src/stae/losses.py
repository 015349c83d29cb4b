"""Training losses (paper eq. 5 and Table 2's cross-entropy): small pure functions.

Every data term is a per-pixel mean, so values are comparable across frame sizes and batch
sizes; w_H then weighs the Huber term (itself a mean over flow-gradient elements) exactly as
the authors' code does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from stae.model.flow import HUBER_DELTA, HUBER_WEIGHT, huber_smoothness


def image_gradient(img: torch.Tensor) -> torch.Tensor:
    """nabla Y: [-1, 0, 1] central differences in x and y with zero padding (as the authors'
    code). (..., C, H, W) -> (..., 2C, H, W): x-differences first, then y."""
    shape = img.shape
    x = img.reshape(-1, *shape[-3:])
    p = F.pad(x, (1, 1, 1, 1))
    dx = p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2]
    dy = p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1]
    return torch.cat((dx, dy), 1).reshape(*shape[:-3], 2 * shape[-3], *shape[-2:])


def intensity_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||Y~ - Y||^2 per pixel (mean squared error)."""
    return F.mse_loss(pred, target)


def gradient_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||nabla Y~ - nabla Y||^2 per pixel and gradient direction."""
    return F.mse_loss(image_gradient(pred), image_gradient(target))


def bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy in nats from logits (log-sum-exp form: stable for any
    logit). Table 2's metric, with the prediction p = sigmoid(logits)."""
    return F.binary_cross_entropy_with_logits(logits, target)


def flow_sparsity(flows: torch.Tensor) -> torch.Tensor:
    """Mean |T| (L1 over both channels and every pixel and step) of flows (..., 2, h, w): the
    sparsity penalty of the paper's Sec. 5 ("hallucinated flow on the uniform regions"): flow
    that buys no reconstruction is pulled to zero."""
    return flows.abs().mean()


def flow_temporal(flows: torch.Tensor) -> torch.Tensor:
    """Mean |T_t - T_{t-1}| of flows (B, T, 2, h, w) over consecutive steps (Sec. 5's
    "flickering"); zero when fewer than two steps are given."""
    if flows.dim() < 5 or flows.shape[-4] < 2:
        return flows.new_zeros(())
    return (flows[..., 1:, :, :, :] - flows[..., :-1, :, :, :]).abs().mean()


def flow_supervision_epe(flows: torch.Tensor, true_flows: torch.Tensor) -> torch.Tensor:
    """Mean end-point error (pixels of the image) between the model's flows (..., 2, h, w) on
    the feature grid, bilinearly upsampled (:func:`stae.model.warp.upsample_flow`), and the
    true backward flows (..., 2, H, W) of a generator (``train.flow_supervision_weight``)."""
    from stae.model.warp import upsample_flow

    factor = true_flows.shape[-1] // flows.shape[-1]
    up = upsample_flow(flows.reshape(-1, *flows.shape[-3:]), factor)
    diff = up - true_flows.reshape(-1, *true_flows.shape[-3:]).to(up.dtype)
    return torch.sqrt(diff.pow(2).sum(1) + 1e-12).mean()


@dataclass(frozen=True)
class LossWeights:
    """Weights of eq. (5)'s terms; a zero weight skips the term.

    Paper, float data (eq. 5): intensity 1, gradient 1, huber 1e-2.
    Paper, binary data (Table 2): bce 1, huber 1e-2 (``LossWeights.binary()``).
    Released code: gradient 1 only (``LossWeights.released_code()``).
    """

    intensity: float = 1.0
    gradient: float = 1.0
    bce: float = 0.0
    huber: float = HUBER_WEIGHT
    huber_delta: float = HUBER_DELTA
    flow_l1: float = 0.0  # flow_sparsity (Sec. 5), off in the paper
    flow_temporal: float = 0.0  # flow_temporal (Sec. 5), off in the paper
    flow_supervision: float = 0.0  # EPE against a generator's true flow: supervision, not the paper's

    @classmethod
    def binary(cls) -> "LossWeights":
        return cls(intensity=0.0, gradient=0.0, bce=1.0)

    @classmethod
    def released_code(cls) -> "LossWeights":
        return cls(intensity=0.0, gradient=1.0, bce=0.0, huber=0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def objective(frames: torch.Tensor, logits: torch.Tensor, flows: torch.Tensor, target: torch.Tensor,
              weights: LossWeights = LossWeights(), true_flows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Eq. (5) with configurable weights, for the steps given.

    frames, logits, target: (..., C, H, W) predicted image, raw decoder output, true next frame;
    flows: (..., 2, h, w) ((B, T, 2, h, w) for the temporal term); true_flows (..., 2, H, W):
    the true backward flows of the same steps, for the supervision term (skipped without them).
    Returns every non-zero term (unweighted) and ``total`` (weighted sum).
    """
    terms: dict[str, torch.Tensor] = {}
    total = frames.new_zeros(())
    if weights.intensity:
        terms["intensity"] = intensity_l2(frames, target)
        total = total + weights.intensity * terms["intensity"]
    if weights.gradient:
        terms["gradient"] = gradient_l2(frames, target)
        total = total + weights.gradient * terms["gradient"]
    if weights.bce:
        terms["bce"] = bce_with_logits(logits, target)
        total = total + weights.bce * terms["bce"]
    if weights.huber:
        terms["huber"] = huber_smoothness(flows.reshape(-1, *flows.shape[-3:]), weights.huber_delta)
        total = total + weights.huber * terms["huber"]
    if weights.flow_l1:
        terms["flow_l1"] = flow_sparsity(flows)
        total = total + weights.flow_l1 * terms["flow_l1"]
    if weights.flow_temporal:
        terms["flow_temporal"] = flow_temporal(flows)
        total = total + weights.flow_temporal * terms["flow_temporal"]
    if weights.flow_supervision and true_flows is not None:
        terms["flow_supervision"] = flow_supervision_epe(flows, true_flows)
        total = total + weights.flow_supervision * terms["flow_supervision"]
    terms["total"] = total
    return terms
