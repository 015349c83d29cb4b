"""Which batch size reaches the lower loss in the same WALL-CLOCK time, with the default layers?

recipe_comparison.py ranked recipes at equal sequences, which was equal compute while every
layer was a direct convolution (the cost per sequence did not depend on the batch). With the
default `model.fft_conv` and `model.subpixel_decoder` a sequence costs less in a large batch
(benchmarks/results/train.json), so equal sequences is no longer equal time. This script
trains each candidate of CANDIDATES for the same wall-clock budget, side by side (one
process and one thread each, so both see the same machine), on the `fast` recipe's own
protocol (configs/fast.yaml: float Moving MNIST, eq. (5), vanilla model, tau = 10):

1. calibrate: a short run of each candidate measures its sequences/s (side by side);
2. train: each candidate gets the number of updates that fits the budget at that rate (so
   its one-cycle schedule completes), capped by `train.max_minutes`;
3. score: validation curve (eq. (5) terms of frame tau+1 on 96 validation sequences) and the
   best checkpoint's per-pixel L2 and eq. (5) loss on the first 1,000 test sequences.

    python benchmarks/recipe_wallclock.py [--minutes 20] [--out benchmarks/results/recipe_wallclock.json]
    # Table 2's setting with the flow fixes; Theta held for the same number of SEQUENCES:
    python benchmarks/recipe_wallclock.py --config configs/vanilla-mmnist.yaml --warmup-sequences 1600 \
        --out benchmarks/results/recipe_wallclock_binary.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from stae.side_by_side import Job, run_side_by_side, stae_train_command

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fast.yaml"
CANDIDATES = {  # name: (batch size, learning rate)
    "bs1-lr1e-3": (1, 1e-3),  # the fast recipe as measured at equal sequences
    "bs16-lr2e-3": (16, 2e-3),  # the Table 2 runs' setting
}
COMMON = ["train.threads=1", "data.val_sequences=96", "checkpoint.val_batches=0", "log.tensorboard=false", "log.progress=false",
          "log.every_steps=5", "checkpoint.keep_last=1"]


def train_at_once(jobs: dict[str, list[str]], runs: Path, config: Path = CONFIG) -> None:
    """Train every job at once (``stae train CONFIG --set ...``), one process and one thread each."""
    procs = [Job(name, stae_train_command(config, COMMON + sets, runs / name), runs / f"{name}.log", threads=1)
             for name, sets in jobs.items()]
    codes = run_side_by_side(procs, lanes=len(procs), cwd=ROOT)
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        raise SystemExit(f"recipe_wallclock: run(s) {', '.join(failed)} failed, see their logs in {runs}")


def records(run: Path, kind: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget per candidate")
    ap.add_argument("--test", type=int, default=1000, help="test sequences scored at the end")
    ap.add_argument("--runs", default=None, help="run directories (default: a temporary one)")
    ap.add_argument("--config", default=str(CONFIG), help="training config of every candidate (default configs/fast.yaml)")
    ap.add_argument("--warmup-sequences", type=int, default=None,
                    help="hold Theta for this many training sequences (train.flow_warmup_steps = N // batch)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recipe_wallclock.json"))
    args = ap.parse_args()
    runs = Path(args.runs or tempfile.mkdtemp(prefix="recipe-wallclock-"))
    runs.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()

    config = Path(args.config).resolve()
    candidates = {}
    for name, (batch, lr) in CANDIDATES.items():
        candidates[name] = [f"train.batch_size={batch}", f"train.lr={lr}"] + (
            [] if args.warmup_sequences is None else [f"train.flow_warmup_steps={args.warmup_sequences // batch}"])
    cal = runs / "calibrate"
    cal.mkdir(exist_ok=True)
    train_at_once({n: s + [f"train.max_steps={max(4, 96 // CANDIDATES[n][0])}", "checkpoint.every_steps=100000"]
                      for n, s in candidates.items()}, cal, config)
    rate = {}
    for name in CANDIDATES:
        sps = [r["seq_per_s"] for r in records(cal / name, "train")][1:]  # the first record includes start-up
        rate[name] = sorted(sps)[len(sps) // 2]
    print("calibration (sequences/s, side by side, 1 thread each):", rate, flush=True)

    jobs = {}
    for name, sets in candidates.items():
        batch = CANDIDATES[name][0]
        steps = max(8, int(0.92 * args.minutes * 60 * rate[name] / batch))
        jobs[name] = sets + [f"train.max_steps={steps}", f"train.max_minutes={args.minutes * 1.1:.2f}",
                             f"checkpoint.every_steps={max(1, steps // 8)}"]
    t0 = time.time()
    train_at_once(jobs, runs, config)
    wall = time.time() - t0

    from stae.machine import describe
    from stae.weights import load_model
    from stae.data.moving_mnist import default_dataset
    from stae.evaluate import evaluate

    torch.set_num_threads(2)
    from stae.training import load_config

    binary = load_config(str(config), []).data.binary
    test = default_dataset("test", num_sequences=args.test, binary=binary, with_truth=True)
    out = {"benchmark": "recipe_wallclock", "protocol": __doc__.split("\n\n")[2].strip(),
           "config": str(config.relative_to(ROOT)) if config.is_relative_to(ROOT) else str(config),
           "binary": binary, "warmup_sequences": args.warmup_sequences, "common": COMMON, "minutes_budget": args.minutes,
           "calibration_seq_per_s": rate, "wall_seconds": round(wall, 1), "loadavg_start": load_start,
           "loadavg_end": os.getloadavg(), "machine": describe(),
           "command": " ".join(["python", *sys.argv]), "candidates": {}}
    for name in CANDIDATES:
        res = json.loads((runs / name / "result.json").read_text())
        scores = evaluate(load_model(runs / name / "best"), test, baselines=("copy_last",), batch_size=16)["results"]
        out["candidates"][name] = {
            "overrides": jobs[name], "updates": res["updates"], "sequences_seen": res["sequences_seen"],
            "minutes": res["minutes"], "stopped": res["stopped"], "best_val": res["best_val"],
            "best_step": res["best_step"],
            "val_curve": [{"step": r["step"], "minutes": round(r["time"] / 60, 2), "total": r["total"]}
                          for r in records(runs / name, "val")],
            "test_l2": scores["model"]["l2"], "test_copy_last_l2": scores["copy_last"]["l2"],
            "test_epe": scores["model"].get("epe"), **({"test_bce": scores["model"]["bce"]} if binary else {})}
        print(f"{name}: {res['updates']} updates, {res['sequences_seen']} sequences, {res['minutes']:.1f} min, "
              f"best val {res['best_val']:.5f}, test L2 {scores['model']['l2']:.5f}"
              + (f", BCE {scores['model']['bce']:.5f}" if binary else "") + f", EPE {scores['model'].get('epe', float('nan')):.2f} px",
              flush=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
