"""Rollout training: the loss covers K frames the model predicts from its own outputs fed back
(``train.rollout_*``; docs/training.md#rollout-training).

A training clip has tau + K_max frames (``data.context`` + ``train.rollout_horizon``). The
model observes the tau context frames from an empty memory, then takes K - 1 more steps; the
input of each is its own previous prediction or -- scheduled sampling, as in PredRNN / OpenSTL
-- the true frame, with a probability that falls over training. The loss (eq. 5 or BCE) covers
every prediction after ``train.loss_warmup`` (or the K fed-back ones, ``loss_steps: last``).

Everything that varies over training is a pure function of (seed, step): the horizon K of the
curriculum, the probability of feeding the truth, and the per-clip draws (numpy's generator
seeded with ``[seed, step, 7]``; the data order uses ``[seed, epoch]``). A resumed run therefore
makes the same decisions as the uninterrupted one, with nothing to store in the checkpoint.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from stae.losses import LossWeights, objective

_STREAM = 7  # third entry of the seed sequence: the draws of scheduled sampling


def horizon_at(t, step: int) -> int:
    """K for update ``step`` (0-based): ``min(K_max, 1 + floor(K_max * step / C))`` with C =
    ``rollout_curriculum_steps`` (each K gets an equal share of the first C updates); K_max
    throughout when C = 0."""
    k_max = t.rollout_horizon
    if t.rollout_curriculum_steps <= 0:
        return k_max
    return min(k_max, 1 + (k_max * step) // t.rollout_curriculum_steps)


def truth_probability(t, step: int) -> float:
    """Probability of feeding the true frame (not the prediction) at a fed-back step of update
    ``step``: linear from ``rollout_truth_start`` to ``rollout_truth_end`` over
    ``rollout_sampling_steps`` updates, then ``rollout_truth_end``; the end value when 0."""
    if t.rollout_sampling_steps <= 0:
        return float(t.rollout_truth_end)
    frac = min(1.0, step / t.rollout_sampling_steps)
    return float(t.rollout_truth_start + (t.rollout_truth_end - t.rollout_truth_start) * frac)


def feed_truth_mask(t, step: int, global_batch: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """(B / W, K_max - 1) bool: which clips of this rank get the true frame at each fed-back step
    of update ``step``. Drawn for the whole global batch from (seed, step), so it does not depend
    on the number of processes; rank r takes its contiguous share (as the data order does)."""
    n = max(t.rollout_horizon - 1, 0)
    u = np.random.default_rng([t.seed, step, _STREAM]).random((global_batch, n))
    per = global_batch // world_size
    mask = u[rank * per:(rank + 1) * per] < truth_probability(t, step)
    return torch.from_numpy(mask)


def rollout_clip_loss(model: nn.Module, clip: torch.Tensor, cfg, weights: LossWeights, step: int,
                      amp_dtype: Optional[torch.dtype] = None, rank: int = 0, world_size: int = 1,
                      validation: bool = False) -> tuple[dict[str, torch.Tensor], Any]:
    """Loss terms of a batch of clips (B, >= tau + K, C, H, W) under rollout training at update
    ``step``. ``validation``: the benchmark protocol instead -- K = K_max, predictions always fed
    back, loss over the K fed-back predictions only. Returns (terms, model output)."""
    t, tau = cfg.train, cfg.data.context
    k = t.rollout_horizon if validation else horizon_at(t, step)
    if validation:
        feed = torch.zeros(clip.shape[0], k - 1, dtype=torch.bool)
    else:
        feed = feed_truth_mask(t, step, clip.shape[0] * world_size, rank, world_size)[:, :k - 1]
    with torch.autocast(clip.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        out = model.run_fed_back(clip[:, :tau], clip[:, tau:tau + k - 1], feed.to(clip.device),
                                 detach=not t.rollout_feedback_grad)
    first = tau - 1 if (validation or t.loss_steps == "last") else t.loss_warmup
    frames, logits, flows = (x[:, first:].float() for x in (out.frames, out.logits, out.flows))
    return objective(frames, logits, flows, clip[:, first + 1:tau + k], weights), out
