"""Training recipes: named defaults for the config, the optimiser and the learning-rate schedule.

* ``paper`` -- Sec. 4 exactly: RMSprop (rho = 0.9, eps = 1e-5), lr = 1e-4 (0.5^(1/100))^epoch,
  one sequence per update, tau = 10 (a random window of tau + 1 frames: feed tau, predict
  frame tau + 1), memory reset after each update (every clip starts from an empty memory),
  element-wise gradient clamp to +-50 (the released code's value; the paper only says "clip
  the gradients to lie in a predefined range"), loss on the last prediction only (Fig. 2).
  An epoch is one pass over the training sequences (10,000 updates).
* ``fast`` -- the default: what reached the paper's loss soonest on this 2-core CPU in the
  measured comparison (docs/training.md, benchmarks/results/recipes.json).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from stae.errors import StaeError

# Each recipe is the config values it sets under the file's and the command line's. ``fast`` is
# the dataclasses' own defaults (run_config.py): chosen by measurement (docs/training.md,
# benchmarks/results/recipes.json): at equal training sequences AdamW + one-cycle with the
# loss on every prediction after 3 context frames reached a 24% lower validation loss than
# the paper's recipe; batch 1 beat 4 and 8 (the CPU cost per sequence is the same for all
# three); bf16 autocast was 34% slower.
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "fast": {},
    "paper": {
        "data": {"context": 10, "random_offset": True, "val_sequences": 3_000},
        "train": {"optimizer": "rmsprop", "lr": 1e-4, "alpha": 0.9, "eps": 1e-5, "momentum": 0.0,
                  "weight_decay": 0.0, "schedule": "paper", "batch_size": 1, "grad_clip": "value",
                  "grad_clip_value": 50.0, "loss_steps": "last", "loss_warmup": 0, "amp": "fp32"},
    },
}


def make_optimizer(params: Iterable[torch.nn.Parameter], t) -> torch.optim.Optimizer:
    """The optimiser of train config ``t`` (``lr`` is set per step by :func:`learning_rate`)."""
    params = list(params)
    if t.optimizer == "rmsprop":
        # torch's alpha is the paper's rho (decay of the squared-gradient average).
        return torch.optim.RMSprop(params, lr=t.lr, alpha=t.alpha, eps=t.eps, momentum=t.momentum,
                                   weight_decay=t.weight_decay)
    if t.optimizer in ("adam", "adamw"):
        if len(t.betas) != 2:
            raise StaeError(f"config key 'train.betas': expected two numbers, got {list(t.betas)}")
        cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=t.lr, betas=tuple(t.betas), eps=t.eps, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    raise StaeError(f"config key 'train.optimizer': unknown optimizer {t.optimizer!r}")


def learning_rate(t, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """The learning rate for update ``step`` (0-based): a pure function of the step, so a
    resumed run follows the same schedule with nothing to restore.

    * paper: ``lr * (0.5 ** (1/100)) ** epoch`` with epoch = step // steps_per_epoch (Sec. 4);
    * cosine: linear warm-up over ``warmup_steps``, then cosine to ``lr * min_lr_ratio``;
    * onecycle: 30% rise from lr/25 to lr (cosine), then cosine down to lr/1e4 (Smith's 1cycle,
      torch's OneCycleLR defaults);
    * constant: ``lr`` after the linear warm-up.
    """
    lr = t.lr
    if t.schedule == "paper":
        return lr * (0.5 ** (1 / 100)) ** (step // max(steps_per_epoch, 1))
    total = max(total_steps, 1)
    if t.schedule == "onecycle":
        up = max(int(0.3 * total), 1)
        if step < up:
            return lr / 25 + (lr - lr / 25) * (1 - math.cos(math.pi * step / up)) / 2
        frac = min((step - up) / max(total - up, 1), 1.0)
        return lr / 1e4 + (lr - lr / 1e4) * (1 + math.cos(math.pi * frac)) / 2
    if t.warmup_steps and step < t.warmup_steps:
        return lr * (step + 1) / t.warmup_steps
    if t.schedule == "constant":
        return lr
    if t.schedule == "cosine":
        frac = min((step - t.warmup_steps) / max(total - t.warmup_steps, 1), 1.0)
        lo = lr * t.min_lr_ratio
        return lo + (lr - lo) * (1 + math.cos(math.pi * frac)) / 2
    raise StaeError(f"config key 'train.schedule': unknown schedule {t.schedule!r}")


def clip_gradients(params: Iterable[torch.nn.Parameter], t) -> None:
    """Sec. 4: "clip the gradients to lie in a predefined range" -- ``value`` clamps every
    element to +-grad_clip_value (released code: 50); ``norm`` rescales the global L2 norm."""
    if t.grad_clip == "value":
        torch.nn.utils.clip_grad_value_(params, t.grad_clip_value)
    elif t.grad_clip == "norm":
        torch.nn.utils.clip_grad_norm_(params, t.grad_clip_value)
