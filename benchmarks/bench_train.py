"""Training throughput: sequences/s of one optimiser step (stae's ``train_step``: forward,
eq. 5 loss, backward, RMSprop) on Moving-MNIST-sized clips (64x64, tau = 10 input frames, vanilla preset), for the
reference implementation (``reference_model.py``: eight gate convolutions, fp32, one sequence
per step), for the fused-cell peer (``fused_cell_peer.py``: one fused 77->180 convolution per
step, Theta/warp/D on the last step, the same loss and optimiser on the last prediction, batch
16, fp32) and for stae with its performance options, at batch 1 and 16, fp32 and bf16
autocast. Every row also gives its ratio to the peer and to stae DIRECT at batch 16, fp32.

    .venv/bin/python benchmarks/bench_train.py [--rounds 3] [--tau 10] [--out FILE]

Variants are timed in interleaved rounds (one step of each variant per round), so that a
change in the machine's load hits every variant alike; the figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf_common as pc  # noqa: E402  (first: sets OMP_WAIT_POLICY before torch loads)

import torch  # noqa: E402

from fused_cell_peer import FusedCellPeer, from_stae, make_peer_step  # noqa: E402
from reference_model import ReferenceModel  # noqa: E402
from stae.model.config import DIRECT, FAST  # noqa: E402
from stae.training import load_config, make_optimizer  # noqa: E402
from stae.training.loop import loss_weights, train_step  # noqa: E402
from stae.model import build_model  # noqa: E402

PRESET = "conv-1enc-1lstm"

# (name, implementation, ModelConfig overrides, batch, bf16 autocast)
VARIANTS: list[tuple[str, str, dict, int, bool]] = [
    ("reference", "reference (8 gate convs, per-step)", {}, 1, False),
    ("peer-b16-fp32", "fused-cell peer (1 fused conv per step, head on the last step)", DIRECT, 16, False),
    ("default-b1-fp32", "stae DIRECT (fused direct conv)", DIRECT, 1, False),
    ("default-b1-bf16", "stae DIRECT (fused direct conv)", DIRECT, 1, True),
    ("default-b16-fp32", "stae DIRECT (fused direct conv)", DIRECT, 16, False),
    ("default-b16-bf16", "stae DIRECT (fused direct conv)", DIRECT, 16, True),
    ("fft-b16-fp32", "stae fft_conv only", {**DIRECT, "fft_conv": True}, 16, False),
    ("fast-b1-fp32", "stae defaults (fft_conv + subpixel_decoder)", FAST, 1, False),
    ("fast-b16-fp32", "stae defaults (fft_conv + subpixel_decoder)", FAST, 16, False),
    ("fast-b16-bf16", "stae defaults (fft_conv + subpixel_decoder)", FAST, 16, True),
    # The peer's work: the loss on the last prediction only (paper Fig. 2; train.loss_steps=last),
    # so stae's head runs on the last step only, as the peer's does.
    ("default-b16-fp32-last", "stae DIRECT (fused direct conv), loss on the last prediction", DIRECT, 16, False),
    ("fast-b16-fp32-last", "stae defaults (fft_conv + subpixel_decoder), loss on the last prediction", FAST, 16, False),
    # The other issues' models: the image-space head of video-gray64 (docs/model.md#image-space-head-option)
    # and rollout training as rollout-mmnist trains (ROLLOUT_SETS: 10 predictions fed back).
    ("fast-b16-fp32-image", "stae defaults + image-space head (residual and mask, as video-gray64)",
     {**FAST, "head": "image", "image_residual": True, "image_mask": True}, 16, False),
    ("fast-b16-fp32-rollout", "stae defaults, rollout training (10 in, 10 predictions fed back, as rollout-mmnist)",
     FAST, 16, False),
]
# Run-config overrides of the rollout row: the full horizon from the first update, every
# fed-back step the model's own prediction (no scheduled-sampling truth).
ROLLOUT_HORIZON = 10
ROLLOUT_SETS = [f"train.rollout_horizon={ROLLOUT_HORIZON}", "train.rollout_curriculum_steps=0",
                "train.rollout_truth_start=0", "train.rollout_truth_end=0"]
OTHER_MODELS = ("fast-b16-fp32-image", "fast-b16-fp32-rollout")  # other work per sequence: never "best"


def make_step(model: torch.nn.Module, batch: int, tau: int, bf16: bool, seed: int = 0,
              loss_steps: str = "all", rollout: bool = False) -> Callable[[], float]:
    """One training step (stae's ``train_step``: eq. 5 loss on every prediction, or the last one
    for ``loss_steps="last"``, RMSprop, no clipping) on a fixed random clip (B, tau + 1, 1, 64,
    64); returns the loss. ``rollout``: rollout training (ROLLOUT_SETS) on clips of tau +
    ROLLOUT_HORIZON frames. For the fused-cell peer: its own step, the same loss on the last
    prediction, the same optimiser."""
    g = torch.Generator().manual_seed(seed)
    clip = torch.rand(batch, tau + (ROLLOUT_HORIZON if rollout else 1), 1, 64, 64, generator=g)
    cfg = load_config(None, [f"data.context={tau}", "train.optimizer=rmsprop", "train.lr=1e-4",
                             "train.weight_decay=0", "train.loss=eq5", f"train.loss_steps={loss_steps}",
                             "train.loss_warmup=0", "train.grad_clip=none"]
                      + (ROLLOUT_SETS + [f"data.num_frames={clip.shape[1]}"] if rollout else []))
    weights = loss_weights(cfg)
    if isinstance(model, FusedCellPeer):
        return make_peer_step(model, clip, cfg, weights)
    opt = make_optimizer(model.parameters(), cfg.train)
    amp = torch.bfloat16 if bf16 else None

    def step() -> float:
        return train_step(model, opt, clip, cfg, weights, 0, amp_dtype=amp)[0]["total"]

    return step


def _loss_on(name: str) -> str:
    if name.endswith("-rollout"):
        return f"every prediction, {ROLLOUT_HORIZON} fed back"
    return "last prediction" if name.endswith("-last") or name.startswith("peer") else "every prediction"


def build(name: str, overrides: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(PRESET, **overrides)
    if name == "reference":
        return ReferenceModel(model)
    return from_stae(model) if name.startswith("peer") else model


def run(rounds: int, tau: int, only: list[str] | None = None) -> dict:
    variants = [v for v in VARIANTS if not only or v[0] in only]
    steps = {}
    for name, _, overrides, batch, bf16 in variants:
        steps[name] = make_step(build(name, overrides), batch, tau, bf16, loss_steps="last" if name.endswith("-last") else "all",
                                rollout=name.endswith("-rollout"))
        steps[name]()  # warm-up: allocator, oneDNN primitive cache, FFT plans
    times: dict[str, list[float]] = {v[0]: [] for v in variants}
    cpu: dict[str, list[float]] = {v[0]: [] for v in variants}
    for _ in range(rounds):
        for name, _, _, batch, _ in variants:
            # Small steps are repeated within a round so each timing spans >= ~0.5 s.
            reps = 4 if batch == 1 else 1
            c0 = time.process_time()
            t = pc.timed(steps[name], repeats=reps, warmup=0)
            cpu[name].append((time.process_time() - c0) / reps)
            times[name].extend(t)
    rows = []
    ref = None
    for name, impl, overrides, batch, bf16 in variants:
        s = pc.summary(times[name])
        row = {"variant": name, "implementation": impl, "options": overrides, "batch": batch, "tau": tau,
               "loss_on": _loss_on(name),
               "dtype": "bf16 autocast" if bf16 else "fp32", "step_median_s": s["median_s"],
               "step_p95_s": s["p95_s"], "steps_timed": s["n"], "seq_per_s": batch / s["median_s"],
               # CPU seconds (all threads) per step: less sensitive to other processes than wall time
               "cpu_per_step_s": statistics.median(cpu[name])}
        if name == "reference":
            ref = row["seq_per_s"]
        rows.append(row)
    by_name = {r["variant"]: r["seq_per_s"] for r in rows}
    for row in rows:
        row["x_reference"] = row["seq_per_s"] / ref if ref else None
        row["x_peer"] = row["seq_per_s"] / by_name["peer-b16-fp32"] if "peer-b16-fp32" in by_name else None
        row["x_direct_b16"] = row["seq_per_s"] / by_name["default-b16-fp32"] if "default-b16-fp32" in by_name else None
    best = max((r for r in rows if r["variant"] not in ("reference", "peer-b16-fp32", *OTHER_MODELS)),
               key=lambda r: r["seq_per_s"],
               default=None)
    return {"benchmark": "train", "preset": PRESET, "frame": [64, 64], "rounds": rounds, "rows": rows,
            "best": best["variant"] if best else None,
            "best_x_reference": best["x_reference"] if best else None}


COLUMNS = [("variant", "variant"), ("batch", "batch"), ("dtype", "dtype"), ("loss_on", "loss on"), ("step_median_s", "step (s, median)"),
           ("step_p95_s", "p95 (s)"), ("cpu_per_step_s", "CPU s/step"), ("seq_per_s", "sequences/s"),
           ("x_reference", "x reference"), ("x_peer", "x fused-cell peer"), ("x_direct_b16", "x DIRECT b16")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    ap.add_argument("--tau", type=int, default=10, help="input frames per clip (default 10)")
    ap.add_argument("--only", nargs="*", help="variant names to run (default all)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/train.json)")
    args = ap.parse_args(argv)
    pc.setup_threads(args.threads)
    m = pc.machine()
    res = run(args.rounds, args.tau, args.only)
    res["machine"] = m
    path = pc.write_json("train", res, args.out)
    print(f"training throughput, {PRESET}, 64x64, tau={args.tau} -- {pc.machine_line(m)}")
    print(pc.table(res["rows"], COLUMNS))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
