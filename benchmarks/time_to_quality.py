"""Time to quality (issue 16; DAWNBench / nanoGPT-speedrun style): wall-clock minutes of
training from a fresh start until the test BCE first reaches 0.0835 (the paper's best Table 2
score), median over seeds, with the curves; one config, or two configs side by side.

    # the quiet-machine measurement (vanilla-mmnist vs the fast recipe, 3 seeds each, ~30 min):
    .venv/bin/python benchmarks/time_to_quality.py configs/vanilla-mmnist.yaml configs/vanilla-mmnist-fast.yaml
    # a smoke run: tiny budget, results to /tmp
    .venv/bin/python benchmarks/time_to_quality.py --seeds 0 --max-minutes 0.5 --eval-every 5 \
        --subset 16 --confirm 32 --out /tmp/ttq.json

Protocol (``PROTOCOL`` below, also written into the JSON):

* each (config, seed) trains in a fresh process (``--child``), with the config's own recipe
  and ``train.seed = seed``; the runs are interleaved (config A seed 0, B seed 0, A seed 1, ...)
  so that a drift of the machine's load touches both configs alike; the ratio of the medians
  is the figure that carries across machines;
* the clock runs only while training (making the batch, the update); it stops while the model
  is scored. It starts at the first update (model built, data ready);
* every ``--eval-every`` updates the model is scored on a fixed subset (the first
  ``--subset`` sequences) of the 1,000 binary test sequences (generated ``test`` split, seed 2;
  feed frames 0-9, predict frame 10; per-pixel BCE of the predicted probabilities, as
  ``stae evaluate --binary``). When the subset BCE is within ``--margin`` of the target, the
  same score is computed on all 1,000 (the confirmation); the time of the first evaluation whose
  1,000-sequence BCE is <= the target is the run's time to quality. ``--split val`` scores the
  config's validation split instead (for designing a recipe: never choose on the test split).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "vanilla-mmnist.yaml"
TARGET = 0.0835  # the paper's best binary Moving MNIST BCE (Table 2)
EVAL_CONTEXT = 10  # scored as in the paper, whatever context the recipe trains on: feed 10, predict the 11th
PROTOCOL = __doc__.split("Protocol (``PROTOCOL`` below, also written into the JSON):")[1].strip()


# ------------------------------------------------------------------------- one run (child)
def eval_clips(cfg, split: str, n: int):
    """(n, 11, C, H, W) uint8 clips to score: the binary test split (seed 2) or the config's
    validation split, first EVAL_CONTEXT + 1 frames."""
    import torch

    from stae.data.moving_mnist import default_dataset
    from stae.training.batches import build_datasets, fetch

    tau = EVAL_CONTEXT
    if split == "test":
        ds = default_dataset("test", num_sequences=n, binary=cfg.data.binary, size=cfg.data.size)
    else:
        ds = build_datasets(cfg.data)[1]
    n = min(n, len(ds))
    clips = [it["clip"][: tau + 1] for s in range(0, n, 50) for it in fetch(ds, range(s, min(n, s + 50)))]
    return (torch.stack(clips) * 255).round().to(torch.uint8)


def score(model, clips, n: int, batch: int = 50) -> float:
    """Per-pixel BCE of the prediction of the last frame from the others (stae.metrics.bce,
    averaged over clips as ``stae evaluate`` does), on the first n clips."""
    import torch

    from stae.metrics import bce

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, min(n, len(clips)), batch):
            clip = clips[s:s + batch].float() / 255
            out = model(clip[:, :-1])
            total += bce(out.frames[:, -1].float(), clip[:, -1]) * clip.shape[0]
            count += clip.shape[0]
    model.train()
    return total / count


def setup(spec: dict):
    """Config, data, model and optimiser of a fresh run, as ``stae train`` builds them."""
    import random

    import numpy as np
    import torch

    from stae.model.autoencoder import SpatioTemporalAutoencoder
    from stae.training import load_config, make_optimizer
    from stae.training.batches import DataOrder, build_datasets, num_frames_of
    from stae.training.loop import loss_weights

    cfg = load_config(spec["config"], spec["sets"] + [f"train.seed={spec['seed']}"])
    torch.set_num_threads(spec["threads"] or cfg.train.threads or torch.get_num_threads())
    train_ds, _ = build_datasets(cfg.data)
    t = cfg.train
    order = DataOrder(len(train_ds), num_frames_of(train_ds), cfg.data.context + 1, t.batch_size, t.seed,
                      cfg.data.random_offset)
    total = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs * order.steps_per_epoch))
    random.seed(t.seed)
    np.random.seed(t.seed)
    torch.manual_seed(t.seed)
    model = SpatioTemporalAutoencoder(cfg.model)
    return cfg, train_ds, order, total, model, make_optimizer(model.parameters(), t), loss_weights(cfg)


def child(spec: dict) -> dict:
    """Train one (config, seed) until the target is confirmed, the schedule ends or the time
    budget runs out; returns the curve and the time to quality (None if not reached)."""
    import torch

    from stae.training import learning_rate
    from stae.training.batches import make_batch
    from stae.training.loop import train_step

    cfg, train_ds, order, total, model, opt, weights = setup(spec)
    clips = eval_clips(cfg, spec["split"], max(spec["confirm"], spec["subset"]))
    tau, target = cfg.data.context, spec["target"]
    curve, crossing, clock = [], None, 0.0
    for step in range(total):
        t0 = time.perf_counter()
        idx, offs = order.indices(step)
        clip = make_batch(train_ds, idx, offs, tau + 1)
        train_step(model, opt, clip, cfg, weights, step, learning_rate(cfg.train, step, order.steps_per_epoch, total))
        clock += time.perf_counter() - t0
        done = step + 1 == total or clock / 60 > spec["max_minutes"]
        if (step + 1) % spec["eval_every"] and not done:
            continue
        point = {"step": step + 1, "sequences": (step + 1) * cfg.train.batch_size, "minutes": clock / 60,
                 "subset_bce": score(model, clips, spec["subset"])}
        if point["subset_bce"] <= target * (1 + spec["margin"]) or done:
            point["full_bce"] = score(model, clips, spec["confirm"])
            if crossing is None and point["full_bce"] <= target:
                crossing = point
        curve.append(point)
        print(json.dumps(point), file=sys.stderr, flush=True)
        if done or (crossing is not None and not spec["keep_going"]):
            break
    return {"config": spec["config"], "seed": spec["seed"], "updates_scheduled": total, "curve": curve,
            "minutes_to_target": None if crossing is None else crossing["minutes"],
            "updates_to_target": None if crossing is None else crossing["step"],
            "threads": torch.get_num_threads(), "evaluated_clips": len(clips)}


# ------------------------------------------------------------------------- orchestration
def run_one(spec: dict, threads: int | None) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env, stdout=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"time_to_quality: run {spec['config']} seed {spec['seed']} failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict], configs: list[str]) -> dict:
    """Median minutes (and updates) to the target per config; the ratio of the second to the first."""
    out = {}
    for c in configs:
        mins = [r["minutes_to_target"] for r in runs if r["config"] == c]
        ups = [r["updates_to_target"] for r in runs if r["config"] == c]
        reached = [m for m in mins if m is not None]
        # A run that never reached the target counts as infinitely slow in the median.
        med = statistics.median([m if m is not None else math.inf for m in mins]) if mins else None
        out[c] = {"minutes": mins, "updates": ups, "median_minutes": med, "reached": len(reached), "runs": len(mins),
                  "median_updates": statistics.median([u if u is not None else math.inf for u in ups]) if ups else None}
    if len(configs) == 2 and all(out[c]["median_minutes"] not in (None, math.inf) for c in configs):
        out["ratio_second_to_first"] = out[configs[1]]["median_minutes"] / out[configs[0]]["median_minutes"]
    return out


def plot(runs: list[dict], path: Path, target: float, split: str) -> None:
    from stae.viz import plot_curves

    lines = {f"{Path(r['config']).stem} seed {r['seed']}": [(p["minutes"], p["subset_bce"]) for p in r["curve"]]
             for r in runs}
    lines[f"target {target}"] = [(0.0, target), (max(p["minutes"] for r in runs for p in r["curve"]), target)]
    plot_curves(lines, path, title=f"time to quality ({split} BCE, fixed subset)", xlabel="training minutes",
                ylabel="BCE (nats per pixel)", logy=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="*", default=[str(DEFAULT_CONFIG)], help="one or two run configs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="train.seed of each run (default 0 1 2)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="override for every config, section.key=value")
    ap.add_argument("--target", type=float, default=TARGET, help=f"BCE to reach (default {TARGET})")
    ap.add_argument("--split", choices=("test", "val"), default="test", help="test (the measurement) | val (recipe design)")
    ap.add_argument("--eval-every", type=int, default=10, help="score every this many updates (default 10)")
    ap.add_argument("--subset", type=int, default=200, help="sequences scored at each evaluation (default 200)")
    ap.add_argument("--confirm", type=int, default=1000, help="sequences of the confirming score (default 1000)")
    ap.add_argument("--margin", type=float, default=0.05, help="confirm when subset BCE <= target * (1 + margin)")
    ap.add_argument("--max-minutes", type=float, default=20.0, help="training-time budget per run (default 20)")
    ap.add_argument("--keep-going", action="store_true", help="train on after the target (the whole curve)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: all available cores)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "time_to_quality.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if len(args.configs) > 2:
        raise SystemExit("time_to_quality: give one or two configs")
    configs = [str(Path(c).resolve()) for c in args.configs]
    threads = args.threads or len(os.sched_getaffinity(0))
    load_start, runs = list(os.getloadavg()), []
    for seed in args.seeds:  # interleaved: A s0, B s0, A s1, B s1, ...
        for c in configs:
            spec = {"config": c, "seed": seed, "sets": args.sets, "target": args.target, "split": args.split,
                    "eval_every": args.eval_every, "subset": args.subset, "confirm": args.confirm,
                    "margin": args.margin, "max_minutes": args.max_minutes, "keep_going": args.keep_going,
                    "threads": threads}
            print(f"== {Path(c).name} seed {seed}", flush=True)
            runs.append(run_one(spec, threads))
            print(f"   minutes to {args.target}: {runs[-1]['minutes_to_target']}", flush=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import perf_common as pc

    res = {"benchmark": "time_to_quality", "protocol": PROTOCOL, "target_bce": args.target, "split": args.split,
           "configs": [str(Path(c).relative_to(ROOT)) if Path(c).is_relative_to(ROOT) else c for c in configs],
           "settings": {k: getattr(args, k) for k in ("seeds", "sets", "eval_every", "subset", "confirm", "margin",
                                                      "max_minutes", "keep_going")},
           "threads": threads, "loadavg_start": load_start, "summary": summarise(runs, configs), "runs": runs}
    path = pc.write_json("time_to_quality", res, args.out)
    plot(runs, path.with_suffix(".png"), args.target, args.split)
    print(json.dumps(res["summary"], indent=2))
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
