"""Label propagation choices (issue 14), measured on VALIDATION sequences (never the test split,
which docs/results.md reports): soft vs hard labels, occlusion handling, the observed mode's
refinement (seeded by the model's flow, by zero flow, or not refined at all), for both models'
data -- Moving MNIST (vanilla-mmnist) and the real-textures generator (video-gray64).

    .venv/bin/python benchmarks/propagation_ablation.py            # 100 val sequences each, ~15 min on 1 thread
    .venv/bin/python benchmarks/propagation_ablation.py --sequences 4 --out /tmp/ablation.json   # smoke
    # another model for one dataset, some variants only (e.g. choosing a textures model on val):
    .venv/bin/python benchmarks/propagation_ablation.py --model textures=runs/video-gray64-flow \
        --data textures --only copy_first "predictive soft" --out benchmarks/results/propagation_model.json

Writes benchmarks/results/propagation_ablation.json: mean IoU at 1, 5 and 10 frames ahead per
variant and dataset (stae.propagation_eval, labels on frame 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"moving_mnist": "vanilla-mmnist", "textures": "video-gray64"}


def variants():
    """(name, methods, PropagationOptions) of every measured choice."""
    from stae.flow_refine import RefineOptions
    from stae.propagate import PropagationOptions

    soft, hard = PropagationOptions(soft=True), PropagationOptions(soft=False)
    occ = PropagationOptions(soft=True, occlusion=True)
    return [
        ("copy_first", ("copy_first",), soft),
        ("predictive hard", ("predictive",), hard),
        ("predictive soft", ("predictive",), soft),
        ("dis hard", ("dis",), hard),
        ("dis soft", ("dis",), soft),
        ("dis soft + occlusion", ("dis",), occ),
        ("observed hard", ("observed",), hard),
        ("observed soft", ("observed",), soft),
        ("observed soft + occlusion", ("observed",), occ),
        ("observed soft, half the steps", ("observed",), replace(soft, refine=RefineOptions(steps=30))),
        ("observed soft, smoothness x4", ("observed",), replace(soft, refine=RefineOptions(smoothness=0.2))),
    ]


def zero_flow_model(model):
    """The same model with its flow forced to zero: the observed mode seeded by zero flow."""
    import copy

    z = copy.deepcopy(model)
    with torch.no_grad():
        z.flow.net[-1].weight.zero_()
        z.flow.net[-1].bias.zero_()
    return z


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--model", action="append", default=[], metavar="DATA=CHECKPOINT",
                    help="the model for one dataset (default: vanilla-mmnist, video-gray64)")
    ap.add_argument("--data", nargs="+", choices=tuple(MODELS), default=list(MODELS), help="datasets (default both)")
    ap.add_argument("--only", nargs="+", default=None, metavar="VARIANT", help="measure only these variants")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "propagation_ablation.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    import stae
    from stae.machine import describe
    from stae.propagate import PropagationOptions
    from stae.propagation_eval import labelled_sequences, propagation_iou

    models = {**MODELS, **dict(m.split("=", 1) for m in args.model)}
    models = {d: models[d] for d in args.data}
    result = {"benchmark": "propagation_ablation", "what": __doc__.split("\n\n")[0], "split": "val", "models": models,
              "sequences": args.sequences, "threads": args.threads, "machine": describe(), "iou": {}, "seconds": {}}
    for data, name in models.items():
        model = stae.load_model(name).eval()
        clips, labels = labelled_sequences(data, "val", args.sequences)
        rows = variants() + [("observed soft, seeded by zero flow", ("observed",), PropagationOptions())]
        for label, methods, options in rows:
            if args.only and label not in args.only:
                continue
            t0 = time.perf_counter()
            m = zero_flow_model(model) if "zero flow" in label else model
            result["iou"].setdefault(data, {})[label] = propagation_iou(m, clips, labels, methods, options)[methods[0]]
            result["seconds"].setdefault(data, {})[label] = round(time.perf_counter() - t0, 1)
            print(data, label, result["iou"][data][label], flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
