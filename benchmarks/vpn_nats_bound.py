"""Issue 15: VPN's nats per frame (target < 179.8) with and without compounding error.

VPN's score (``stae.metrics.vpn_nats_per_frame``) of a 10 -> 10 rollout scores frames the model
predicts from its own fed-back predictions. The same model predicting each of those frames from
the true frames before it (teacher forcing: frame t from frames 0..t-1, t = 10..19) shows the
score without compounding error -- what a perfect rollout training could at best carry over.
This script measures both on the VALIDATION split (seed 1, never the test split), with float
and with binarised input frames, per predicted frame:

    .venv/bin/python benchmarks/vpn_nats_bound.py [MODEL ...] [--out FILE]   # default: rollout-mmnist vanilla-mmnist

Writes benchmarks/results/vpn_nats_bound.json (or FILE). One thread, about a minute per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "vpn_nats_bound.json"
CLIPS, CONTEXT, HORIZON = 96, 10, 10


@torch.no_grad()
def score(model, clips: torch.Tensor) -> dict:
    """Nats per frame (mean and per predicted frame) of one-step and rollout predictions."""
    from stae.metrics import vpn_nats_per_frame

    truth = clips[:, CONTEXT:CONTEXT + HORIZON]
    one_step = model(clips[:, :CONTEXT + HORIZON - 1], first_output=CONTEXT - 1).frames
    fed_back = model.rollout(clips[:, :CONTEXT], HORIZON).frames
    out = {}
    for name, prob in (("one_step_teacher_forced", one_step), ("rollout", fed_back)):
        per = [vpn_nats_per_frame(prob[:, k], truth[:, k]) for k in range(HORIZON)]
        out[name] = {"nats_per_frame": sum(per) / HORIZON, "per_predicted_frame": per}
    return out


def main(argv: list[str]) -> int:
    from stae.data.moving_mnist import default_dataset
    from stae.machine import describe
    from stae.weights import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=["rollout-mmnist", "vanilla-mmnist"], metavar="MODEL")
    ap.add_argument("--out", type=Path, default=OUT, help="JSON path (default benchmarks/results/vpn_nats_bound.json)")
    args = ap.parse_args(argv)
    models = {spec: load_model(spec).eval() for spec in args.models}  # a bad name fails before any work
    torch.set_num_threads(1)
    ds = default_dataset("val", num_frames=CONTEXT + HORIZON, binary=False, size=(64, 64))
    clips = torch.stack([ds[i]["clip"] for i in range(CLIPS)])
    inputs = {"float inputs": clips, "binarised inputs": (clips >= 0.5).float()}
    rows = {}
    for spec, model in models.items():
        rows[spec] = {kind: score(model, x) for kind, x in inputs.items()}
        for kind, r in rows[spec].items():
            print(f"{spec:16s} {kind:17s} one-step {r['one_step_teacher_forced']['nats_per_frame']:6.1f}"
                  f"  rollout {r['rollout']['nats_per_frame']:6.1f} nats/frame", flush=True)
    args.out.write_text(json.dumps({
        "benchmark": "vpn_nats_bound", "data": f"validation split (seed 1), first {CLIPS} clips, 20 frames",
        "target_nats_per_frame": 179.8, "rows": rows, "machine": describe(),
        "command": "python benchmarks/vpn_nats_bound.py " + " ".join(argv)}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    from stae.errors import run_script

    sys.exit(run_script("vpn_nats_bound.py", main, sys.argv[1:]))
