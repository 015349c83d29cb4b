"""``stae demo``: a first run that shows what stae does, offline, in a few minutes.

It trains the paper's vanilla model with the recipe whose flow is motion (the shipped
``vanilla-mmnist`` recipe, configs/vanilla-mmnist.yaml: binary Moving MNIST, BCE, the border
sampler and Theta held at the identity warp for the first part of training) for ``--minutes``
of wall-clock time, then scores it beside the shipped ``vanilla-mmnist`` model, copying the
last frame and OpenCV DIS on the same test clips (BCE, flow end-point error on digit pixels),
and draws both models' predictions and flows side by side.

The budget: after timing a few updates the demo sets the schedule's length to the number of
updates that fit in ``--minutes`` (so the one-cycle schedule completes), with a hard stop at
1.2x the budget; Theta is held for the first third of the updates (with half, one run of
147 updates ended with a flow of 0.2 px; with a third, 2.5 px and an end-point error below
zero flow's).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stae.commands import number
from stae.errors import StaeError

EVAL_CLIPS = 48  # test sequences scored after training
FIGURE_ROWS = 3
SHIPPED = "vanilla-mmnist"
# configs/vanilla-mmnist.yaml, the shipped model's recipe, without its length (set from the budget)
RECIPE = ["model.output=sigmoid", "model.warp_padding=border", "data.binary=true", "train.loss=bce",
          "train.batch_size=16", "train.lr=2e-3", "data.val_sequences=16", "checkpoint.validate=false",
          "checkpoint.keep_last=1", "log.image_every=50"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="train the vanilla model for a few minutes; compare it with the shipped model; draw both",
        description="Train the paper's vanilla model (conv-1enc-1lstm) with the shipped model's recipe "
                    "(configs/vanilla-mmnist.yaml) on generated binary Moving MNIST for --minutes of wall-clock "
                    "time, score it beside the shipped vanilla-mmnist model, copy-last and OpenCV DIS on 48 test "
                    "sequences, and write OUT/figure.png, OUT/eval.json and the run in OUT/run.")
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
    from stae.predict import check_writable_dir
    from stae.training import load_config, train

    if not args.minutes > 0:
        raise StaeError(f"--minutes must be > 0, got {args.minutes}")
    out = Path(args.out)
    check_writable_dir(out)  # before minutes of training, not after
    if out.exists() and any(out.iterdir()):
        raise StaeError(f"{out}: exists and is not empty; choose another --out (a demo never overwrites a run)")
    base = RECIPE + [f"train.seed={args.seed}", f"train.threads={args.threads}"]
    cfg = load_config(None, base)
    t0 = time.perf_counter()
    print(f"stae demo: vanilla model ({cfg.model_preset}) with the shipped model's recipe on generated binary "
          f"Moving MNIST 64x64, tau = {cfg.data.context}; timing the model ...", flush=True)
    per_min = _probe_updates_per_minute(cfg)
    budget = max(args.minutes - (time.perf_counter() - t0) / 60, 0.1)
    steps = max(int(per_min * budget), 2)
    print(f"about {per_min:.1f} updates/min of {cfg.train.batch_size} sequences: training {steps} updates "
          f"(~{budget:.1f} min), Theta held for the first {steps // 3}", flush=True)
    cfg = load_config(None, base + [f"train.max_steps={steps}", f"train.max_minutes={1.2 * budget:.3f}",
                                    f"checkpoint.every_steps={steps}", f"train.flow_warmup_steps={steps // 3}"])
    run_dir = out / "run"
    res = train(cfg, run_dir)
    print(f"trained {res.step} updates ({res.step * cfg.train.batch_size} sequences) in "
          f"{(time.perf_counter() - t0) / 60:.1f} min; last training loss {res.last_loss:.4g}", flush=True)
    _score_and_draw(run_dir, res.step, out, cfg.data.context, args.minutes, cfg.log.progress)
    return 0


def _score_and_draw(run_dir: Path, step: int, out: Path, tau: int, minutes: float, progress: bool) -> None:
    """eval.json and the table (fresh model, shipped model, copy-last, DIS), then figure.png."""
    from stae.data.moving_mnist import default_dataset
    from stae.evaluate import evaluate, format_table
    from stae.weights import load_model

    fresh, shipped = load_model(run_dir / f"step-{step:07d}"), load_model(SHIPPED)
    test = default_dataset("test", with_truth=True, binary=True)
    print(f"evaluating on {EVAL_CLIPS} binary test sequences (feed {tau} frames, predict frame {tau + 1}) ...",
          flush=True)
    report = evaluate(fresh, test, context=tau, limit=EVAL_CLIPS, progress=progress)
    other = evaluate(shipped, test, context=tau, limit=EVAL_CLIPS, baselines=())
    res = report["results"]
    report["results"] = {"this run": res.pop("model"), "shipped": other["results"]["model"], **res}
    report = {"checkpoint": str(run_dir / f"step-{step:07d}"), "shipped": SHIPPED,
              "data": "binary moving-mnist test (seed 2)", "train_updates": step, "train_minutes": minutes, **report}
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    fig = out / "figure.png"
    _figure(fresh, shipped, test, tau, fig)
    print(f"wrote {fig} (last 3 inputs | true next | this run's prediction and flow | the shipped model's), "
          f"{out / 'eval.json'}, and the run in {run_dir}")


def _figure(fresh, shipped, test, tau: int, path: Path) -> None:
    """Rows of test clips: inputs t-2..t, truth t+1, then prediction and flow of each model."""
    import torch

    from stae.predict import flow_picture
    from stae.training.batches import fetch
    from stae.viz import grid_image, save_png, to_rgb_uint8

    clip = torch.stack([it["clip"] for it in fetch(test, range(FIGURE_ROWS))])
    with torch.no_grad():
        outs = [m(clip[:, :tau]) for m in (fresh, shipped)]
    # Each model's flow on its own colour scale (its largest flow in these clips), so a young
    # model's shorter flow is not washed out by the shipped model's.
    radii = [max(float(o.flows[:, -1].norm(dim=1).max()) * fresh.stride, 1e-6) for o in outs]
    rows = []
    for i in range(FIGURE_ROWS):
        row = [to_rgb_uint8(clip[i, t]) for t in range(tau - 3, tau + 1)]
        for o, radius in zip(outs, radii):
            row += [to_rgb_uint8(o.frames[i, -1].clamp(0, 1)), flow_picture(o.flows[i, -1], fresh.stride, radius)]
        rows.append(row)
    cols = ["t-2", "t-1", "t", "truth t+1", "this run", f"flow (<= {radii[0]:.1f} px)", "shipped",
            f"flow (<= {radii[1]:.1f} px)"]
    save_png(grid_image(rows, col_labels=cols, scale=2), path)
