"""Measure which training recipe reaches a low validation loss soonest on this CPU.

Runs each candidate for the same number of training sequences (equal compute: the model's
cost per sequence does not depend on the recipe) on generated Moving MNIST (64x64, two
digits, tau = 10, the vanilla model, eq. (5) loss), one after the other, and records its
validation curve (eq. (5) terms of the prediction of frame tau + 1 on 48 fixed validation
sequences) against sequences and wall-clock time (the machine is shared: time is noisy). Writes benchmarks/results/recipes.json.

    python benchmarks/recipe_comparison.py [--sequences 200] [--out benchmarks/results/recipes.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


from stae.training import load_config, train
from stae.training.run_dir import read_metrics
from stae.machine import describe

CANDIDATES = {
    # name: (overrides, sequences the budget is expected to fit -- sets the schedule's length)
    "paper": ["train.recipe=paper"],
    "adamw-bs1-all": ["train.recipe=fast", "train.batch_size=1", "train.lr=1e-3"],
    "adamw-bs4-all": ["train.recipe=fast", "train.batch_size=4", "train.lr=2e-3"],
    "adamw-bs4-last": ["train.recipe=fast", "train.batch_size=4", "train.lr=2e-3", "train.loss_steps=last"],
    "adamw-bs8-all": ["train.recipe=fast", "train.batch_size=8", "train.lr=3e-3"],
}
# A 10x cheaper model of the same structure (16 channels, smaller kernels, 55,009 parameters):
# in minutes it trains far enough to leave the blurry plateau where every recipe looks alike.
SMALL_MODEL = ["model.encoder_channels=[16]", "model.memory_channels=[16]", "model.spatial_kernel=5",
               "model.memory_kernel=5", "model.flow_kernel=9"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sequences", type=int, default=200, help="training sequences per candidate")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--small", action="store_true", help="use SMALL_MODEL instead of the vanilla model")
    ap.add_argument("--out", default="benchmarks/results/recipes.json")
    args = ap.parse_args()
    results = {}
    out = Path(args.out)
    if out.exists():
        results = json.loads(out.read_text()).get("runs", {})
    for name, ovr in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        base = ["data.train_sequences=10000", "data.val_sequences=48", "log.progress=false", "log.tensorboard=false",
                f"train.threads={args.threads}"]
        if args.small:
            base += SMALL_MODEL
        cfg = load_config(None, base + ovr)
        steps = args.sequences // cfg.train.batch_size
        cfg = load_config(None, base + ovr + [f"train.max_steps={steps}", f"checkpoint.every_steps={max(steps // 4, 1)}"])
        run_dir = Path(tempfile.mkdtemp(prefix=f"stae-bench-{name}-"))
        shutil.rmtree(run_dir)
        t0 = time.perf_counter()
        res = train(cfg, run_dir)
        wall = time.perf_counter() - t0
        recs = read_metrics(run_dir)
        val = [{k: r[k] for k in ("step", "time", "total", "intensity", "gradient") if k in r}
               for r in recs if r.get("kind") == "val"]
        train_recs = [r for r in recs if r.get("kind") == "train"]
        results[name] = {
            "overrides": ovr, "model": "small" if args.small else "vanilla", "max_steps": steps, "steps_done": res.step, "stopped": res.stopped,
            "sequences_seen": res.step * cfg.train.batch_size, "wall_s": wall,
            "train_seq_per_s": sum(r["seq_per_s"] for r in train_recs) / max(len(train_recs), 1),
            "val_curve": val, "final_val_total": val[-1]["total"] if val else None,
            "final_val_l2": val[-1].get("intensity") if val else None,
        }
        print(name, json.dumps(results[name]), flush=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"machine": describe(),
                                   "protocol": __doc__.strip().splitlines()[2:6], "runs": results}, indent=1))


if __name__ == "__main__":
    main()
