"""Issue 13: video-gray64's training recipes at full budget, side by side, scored as
benchmarks/video_ablation.py scores its probes -- on data we may use for choosing (the textures
validation split, bigbuckbunny.mp4, still-camera test sequences), never bikes/carphone:

    .venv/bin/python benchmarks/video_recipes.py NAME=MODEL [NAME=MODEL ...]

MODEL is a run directory or a shipped model name (``video-gray64``); each NAME's row (figures
and the training summary: updates, minutes, best step) replaces that NAME's row in
benchmarks/results/video_recipes.json. One thread.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "benchmarks" / "results" / "video_recipes.json"
TRAINING_KEYS = ("updates", "sequences_seen", "minutes", "best_step", "best_val", "started_utc",
                 "load_average_start", "load_average_end", "threads")


def training_of(spec: str) -> tuple[dict, int]:
    """(the training summary of a run directory or shipped model, its data.seed)."""
    from stae.training.run_config import load_config
    from stae.weights import read_metadata

    run = Path(spec)
    if run.is_dir():
        summary = json.loads((run / "result.json").read_text())
        seed = load_config(run / "resolved.yaml").data.seed
    else:
        meta = read_metadata(spec)
        summary = json.loads(meta.get("stae_training", "{}"))
        seed = (yaml.safe_load(meta.get("stae_run_config", "{}")) or {}).get("data", {}).get("seed", 0)
    return {k: summary[k] for k in TRAINING_KEYS if k in summary}, seed


def main(argv: list[str]) -> int:
    from video_ablation import score_model

    from stae.machine import describe
    from stae.weights import load_model

    pairs = [a.split("=", 1) for a in argv]
    if not pairs or any(len(p) != 2 for p in pairs):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    old = json.loads(OUT.read_text()) if OUT.is_file() else {}
    rows = old.get("rows", {})
    for name, spec in pairs:
        t0 = time.time()
        training, seed = training_of(spec)
        rows[name] = {"model": spec, "training": training, **score_model(load_model(spec), seed),
                      "scoring_seconds": round(time.time() - t0, 1)}
        print(name, json.dumps(rows[name]), flush=True)
    rep = {"what": __doc__.split("\n\n")[0], "machine": describe(),
           "note": "2 CPU cores shared with another engineer's runs; scored with one thread",
           "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    OUT.write_text(json.dumps(rep, indent=2) + "\n")
    print("wrote", OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
