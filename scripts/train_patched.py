"""Training launcher of the reproduction (scripts/reproduce.py): ``stae train`` plus two things
the trainer does not do yet, and a summary file that marks a run as finished.

1. A work-around for a field-order bug in ``stae.training.loop.clip_loss`` (commit 7673e15):
   it unpacks the model's :class:`~stae.model.autoencoder.StaeOutput` (frames, flows, logits)
   positionally as (frames, logits, flows), so binary runs crash (BCE gets the flow as logits)
   and eq. (5) runs put the Huber flow term on the image. ``clip_loss`` is replaced by the same
   function reading the fields by name -- correct whether or not the loop is fixed upstream.
   The swap lasts only while :func:`main` trains (:func:`patched_loop`).
2. ``--loss-terms intensity|gradient|both``: Table 3's three losses (eq. 5 with only the
   intensity term, only the gradient term, or both; the Huber flow term kept in all three).
   ``train.loss`` offers eq5 (both) and released (gradient only, and no Huber term), not these.
3. When training returns, ``RUN_DIR/train_result.json`` (:func:`run_summary` plus how the run
   stopped, the load average and the machine): the reproduction treats a run as finished
   only when this file exists.

    python scripts/train_patched.py CONFIG --set section.key=value ... --out RUN_DIR [--loss-terms both]
    python scripts/train_patched.py --summarize RUN_DIR     # write train_result.json of a finished run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from torch import nn

import stae.training.loop as loop
from stae.checkpoint import atomic_write_bytes
from stae.losses import LossWeights, objective

RESULT_NAME = "train_result.json"
LOSS_TERMS = {
    "intensity": LossWeights(intensity=1.0, gradient=0.0),
    "gradient": LossWeights(intensity=0.0, gradient=1.0),
    "both": LossWeights(intensity=1.0, gradient=1.0),
}


def clip_loss(model: nn.Module, clip: torch.Tensor, cfg, weights, amp_dtype: Optional[torch.dtype] = None,
              last_only: bool = False) -> tuple[dict[str, torch.Tensor], Any]:
    """``loop.clip_loss`` with the model outputs taken by name (see the module docstring)."""
    tau = cfg.data.context
    with torch.autocast(clip.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        out = model(clip[:, :tau])
    first = tau - 1 if (last_only or cfg.train.loss_steps == "last") else cfg.train.loss_warmup
    frames, logits, flows = (x[:, first:].float() for x in (out.frames, out.logits, out.flows))
    terms = objective(frames, logits, flows, clip[:, first + 1:tau + 1], weights)
    return terms, out


@contextlib.contextmanager
def patched_loop(weights: Optional[LossWeights] = None):
    """The loop with :func:`clip_loss` (and ``weights`` for every run) swapped in; restored after."""
    saved = loop.clip_loss, loop.loss_weights
    loop.clip_loss = clip_loss
    if weights is not None:
        loop.loss_weights = lambda _cfg: weights  # the loop looks loss_weights up at call time
    try:
        yield
    finally:
        loop.clip_loss, loop.loss_weights = saved


def read_metrics(run_dir: Path) -> list[dict]:
    p = run_dir / "metrics.jsonl"
    out = []
    for line in p.read_text().splitlines() if p.is_file() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line of an interrupted run
    return out


def run_summary(run_dir: Path) -> dict[str, Any]:
    """What a run did, from its resolved.yaml and metrics.jsonl: updates, sequences seen,
    wall-clock minutes, final/best validation loss, the recipe's key settings."""
    cfg = yaml.safe_load((run_dir / "resolved.yaml").read_text())
    recs = read_metrics(run_dir)
    train_recs = [r for r in recs if r.get("kind", "train") == "train"]
    val_recs = [r for r in recs if r.get("kind") == "val"]
    steps = max((int(r["step"]) for r in train_recs + val_recs), default=0)
    t = cfg["train"]
    minutes = max((float(r["time"]) for r in recs if isinstance(r.get("time"), (int, float))), default=0.0) / 60
    val = [(int(r["step"]), float(r["total"])) for r in val_recs if "total" in r]
    return {
        "run_dir": str(run_dir), "preset": cfg["model"]["preset"], "binary": cfg["data"]["binary"],
        "updates": steps, "batch_size": t["batch_size"], "sequences_seen": steps * t["batch_size"],
        "clip_frames": cfg["data"]["context"] + 1, "train_sequences": cfg["data"]["train_sequences"],
        "minutes": round(minutes, 2), "recipe": t["recipe"], "optimizer": t["optimizer"], "lr": t["lr"],
        "schedule": t["schedule"], "loss": t["loss"], "loss_steps": t["loss_steps"], "max_steps": t["max_steps"],
        "max_minutes": t["max_minutes"], "threads": t["threads"],
        "final_val": val[-1][1] if val else None, "best_val": min(v for _, v in val) if val else None,
        "val_sequences": cfg["data"]["val_sequences"],
    }


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "gpu": torch.cuda.is_available()}


def write_result(run_dir: Path, extra: dict[str, Any]) -> Path:
    res = {**run_summary(run_dir), **extra, "machine": machine()}
    p = run_dir / RESULT_NAME
    atomic_write_bytes(p, (json.dumps(res, indent=2) + "\n").encode())
    return p


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out")
    ap.add_argument("--loss-terms", choices=sorted(LOSS_TERMS), default=None)
    ap.add_argument("--summarize", metavar="RUN_DIR", help="only write RUN_DIR/train_result.json")
    ap.add_argument("--extra", metavar="KEY=JSON", action="append", default=[],
                    help="--summarize: facts recorded outside the run (e.g. load_average_start=[5.65,5.65,4.57])")
    args = ap.parse_args(argv)
    if args.summarize:
        run_dir = Path(args.summarize)
        s = run_summary(run_dir)  # the loop stops early only at the time limit
        stopped = "done" if s["max_steps"] and s["updates"] >= s["max_steps"] else "time limit"
        extra = {"stopped": stopped, "summarized_after_the_fact": True}
        for kv in args.extra:
            k, _, v = kv.partition("=")
            extra[k] = json.loads(v)
        print(write_result(run_dir, extra))
        return 0
    from stae.errors import StaeError
    from stae.training import load_config, train

    if not args.out:
        ap.error("--out is required")
    try:
        cfg = load_config(args.config, args.overrides)
    except StaeError as e:
        print(f"train_patched: error: {e}", file=sys.stderr)
        return 2
    run_dir = Path(args.out)
    load0, t0 = os.getloadavg(), time.time()
    with patched_loop(LOSS_TERMS[args.loss_terms] if args.loss_terms else None):
        res = train(cfg, run_dir)
    extra = {"stopped": res.stopped, "total_steps": res.total_steps, "loss_terms": args.loss_terms,
             "load_average_start": [round(x, 2) for x in load0],
             "load_average_end": [round(x, 2) for x in os.getloadavg()],
             "wall_minutes": round((time.time() - t0) / 60, 2),
             "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))}
    print(f"{res.stopped}: {res.step}/{res.total_steps} updates; wrote {write_result(run_dir, extra)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
