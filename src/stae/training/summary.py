"""What a finished run did, as one JSON file: ``RUN_DIR/result.json``.

The loop writes it when a run ends (finished, or stopped at ``train.max_minutes``), so a
script can tell a finished run from one still training and read its budget without parsing
logs: updates, sequences seen, training minutes, the recipe's key settings, the validation
losses, how it stopped and on which machine. :func:`run_summary` rebuilds everything but the
session facts from ``resolved.yaml`` and ``metrics.jsonl`` alone, so it also summarises a run
written by an older version (``stae train --summarize RUN_DIR``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from stae.errors import StaeError
from stae.machine import describe
from stae.training.run_dir import RESOLVED_NAME, RESULT_NAME, read_metrics
from stae.weights import atomic_write_bytes

def training_minutes(records: list[dict[str, Any]]) -> float:
    """Wall-clock minutes of training. Each session (the first, and each ``--resume``, marked
    by a ``{"kind": "session"}`` record) logs times from its own start, so the total is the sum
    of each session's last time."""
    total, last = 0.0, 0.0
    for r in records:
        if r.get("kind") == "session":
            total, last = total + last, 0.0
        elif isinstance(r.get("time"), (int, float)):
            last = max(last, float(r["time"]))
    return (total + last) / 60


def run_summary(run_dir: Union[str, Path]) -> dict[str, Any]:
    """Budget, settings and validation losses of a run, from its resolved.yaml and metrics.jsonl."""
    run_dir = Path(run_dir)
    path = run_dir / RESOLVED_NAME
    if not path.is_file():
        raise StaeError(f"{run_dir}: no {RESOLVED_NAME}; not a stae run directory")
    cfg = yaml.safe_load(path.read_text())
    recs = read_metrics(run_dir)
    train_recs = [r for r in recs if r.get("kind", "train") == "train"]
    val = [(int(r["step"]), float(r["total"])) for r in recs if r.get("kind") == "val" and "total" in r]
    updates = max([int(r["step"]) for r in train_recs] + [s for s, _ in val], default=0)
    t, m, d = cfg["train"], cfg["model"], cfg["data"]
    best = min(val, key=lambda sv: sv[1]) if val else None
    return {
        "run_dir": str(run_dir), "preset": m.get("preset"),
        "model_options": {k: m[k] for k in ("fft_conv", "subpixel_decoder", "recompute_steps", "checkpoint_time") if m.get(k)},
        "data": d.get("source"), "binary": d.get("binary"), "clip_frames": d["context"] + max(1, t.get("rollout_horizon", 0)),
        "train_sequences": d.get("train_sequences"), "val_sequences": d.get("val_sequences"),
        "recipe": t["recipe"], "optimizer": t["optimizer"], "lr": t["lr"], "schedule": t["schedule"],
        "batch_size": t["batch_size"], "loss": t["loss"], "loss_steps": t["loss_steps"],
        "threads": t["threads"], "max_steps": t["max_steps"], "max_minutes": t["max_minutes"],
        "updates": updates, "sequences_seen": updates * t["batch_size"],
        "minutes": round(training_minutes(recs), 2),
        **({"rollout": {k: t[k] for k in t if k.startswith("rollout_") or k == "init_weights"}}
           if t.get("rollout_horizon") else {}),
        "final_val": val[-1][1] if val else None,
        "best_val": best[1] if best else None, "best_step": best[0] if best else None,
    }


def write_result(run_dir: Union[str, Path], extra: Optional[dict[str, Any]] = None) -> Path:
    """``RUN_DIR/result.json``: :func:`run_summary` + ``extra`` (how it stopped, ...) + the machine."""
    res = {**run_summary(run_dir), **(extra or {}), "machine": describe(),
           "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = Path(run_dir) / RESULT_NAME
    atomic_write_bytes(path, (json.dumps(res, indent=2) + "\n").encode())
    return path
