"""Training speed of the image-space head (issue 13, ``model.head=image``), and of the shipped
video-gray64's block matching on top of it, beside the paper's feature-space head: seconds per
optimiser step (stae's ``train_step``: forward, eq. 5 loss on every prediction, backward,
RMSprop) on random 64x64 grey clips, tau = 10, batch 4 (the video-gray64 config's batch), the
vanilla preset with its default performance options.

    .venv/bin/python benchmarks/bench_video_head.py [--rounds 5] [--threads 1]

Variants are timed in interleaved rounds (one step of each per round), so a change in the
(shared) machine's load hits every variant alike; the figure is the median over rounds, and the
CPU seconds per step are reported too (less sensitive to other processes than wall time).
Writes benchmarks/results/video_head.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf_common as pc  # noqa: E402  (first: sets OMP_WAIT_POLICY before torch loads)

from bench_train import make_step  # noqa: E402
from stae.model import build_model  # noqa: E402

PRESET = "conv-1enc-1lstm"
BATCH = 4
# (name, ModelConfig overrides)
VARIANTS: list[tuple[str, dict]] = [
    ("features (paper)", {}),
    ("image", {"head": "image", "image_residual": False, "image_mask": False}),
    ("image+residual", {"head": "image", "image_mask": False}),
    ("image+mask", {"head": "image", "image_residual": False}),
    ("image+mask+residual", {"head": "image"}),
    # recipe 3: the memory also reads the observed motion (docs/model.md#block-matching-option)
    ("image+mask+residual+block_matching", {"head": "image", "block_matching": True}),
    # video-gray64's recipes 4 and 6: that motion refined by two Lucas-Kanade rounds
    ("image+mask+residual+block_matching+refine", {"head": "image", "block_matching": True, "matching_refine": 2}),
]


def run(rounds: int, tau: int) -> dict:
    steps = {}
    import torch

    for name, overrides in VARIANTS:
        torch.manual_seed(0)
        steps[name] = make_step(build_model(PRESET, warp_padding="border", **overrides), BATCH, tau, False)
        steps[name]()  # warm-up
    times: dict[str, list[float]] = {n: [] for n, _ in VARIANTS}
    cpu: dict[str, list[float]] = {n: [] for n, _ in VARIANTS}
    for _ in range(rounds):
        for name, _ in VARIANTS:
            c0 = time.process_time()
            times[name].extend(pc.timed(steps[name], repeats=1, warmup=0))
            cpu[name].append(time.process_time() - c0)
    rows = []
    for name, overrides in VARIANTS:
        s = pc.summary(times[name])
        rows.append({"variant": name, "options": overrides, "batch": BATCH, "tau": tau,
                     "step_median_s": s["median_s"], "step_p95_s": s["p95_s"], "steps_timed": s["n"],
                     "seq_per_s": BATCH / s["median_s"], "cpu_per_step_s": statistics.median(cpu[name])})
    base = rows[0]["cpu_per_step_s"]
    for r in rows:
        r["cpu_x_features"] = r["cpu_per_step_s"] / base
    return {"benchmark": "video_head", "preset": PRESET, "frame": [64, 64], "rounds": rounds, "rows": rows}


COLUMNS = [("variant", "head"), ("step_median_s", "step (s, median)"), ("step_p95_s", "p95 (s)"),
           ("cpu_per_step_s", "CPU s/step"), ("cpu_x_features", "CPU x features"), ("seq_per_s", "sequences/s")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tau", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    pc.setup_threads(args.threads)
    m = pc.machine()
    res = run(args.rounds, args.tau)
    res["machine"] = m
    res["note"] = "2 CPU cores shared with other engineers' training runs while measured"
    path = pc.write_json("video_head", res, args.out)
    print(f"training step, {PRESET}, 64x64, batch {BATCH}, tau={args.tau} -- {pc.machine_line(m)}")
    print(pc.table(res["rows"], COLUMNS))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
