"""Label propagation with the memory warmed up: labels of frame K instead of frame 0.

docs/results.md scores propagation from frame 0, where the model's first flow is a guess from
one frame. Here the shipped model (or CHECKPOINT) carries the true labels of frame K of each
of the first N binary Moving MNIST test sequences 1, 5 and 10 frames ahead, for K = 0 and K = 5
(`stae.propagate.propagate(..., start=K)`; the frames before K only fill the memory), beside
DIS flow and copying the mask on the same frames. Writes benchmarks/results/propagation_start.json.

    python benchmarks/propagation_start.py [--sequences 100] [--checkpoint vanilla-mmnist]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from stae.weights import load_model
from stae.propagate import moving_mnist_sequence, propagate

AHEAD = (1, 5, 10)
STARTS = (0, 5)
METHODS = ("stae", "dis", "copy_first")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=100)
    ap.add_argument("--checkpoint", default="vanilla-mmnist")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "propagation_start.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.checkpoint)
    vals = {k: {m: {a: [] for a in AHEAD} for m in METHODS} for k in STARTS}
    for i in range(args.sequences):
        clip, labels = moving_mnist_sequence(i, "test", binary=True)
        for k in STARTS:
            n = k + max(AHEAD) + 1
            res = propagate(model, list(clip[:n]), labels[k], truth=list(labels[:n]), methods=METHODS, start=k)
            for m in METHODS:
                for a in AHEAD:
                    vals[k][m][a].append(res.iou[m][a])
    table = {f"start_{k}": {m: {str(a): float(np.nanmean(v)) for a, v in d.items()} for m, d in vals[k].items()}
             for k in STARTS}
    out = {"benchmark": "propagation_start", "what": __doc__.split("\n\n")[1].replace("\n", " "),
           "checkpoint": args.checkpoint, "sequences": args.sequences, "test_set": "binary Moving MNIST test, seed 2",
           "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__}, "iou": table}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("| labels of frame | method | " + " | ".join(f"{a} ahead" for a in AHEAD) + " |")
    print("|---|---|" + "---|" * len(AHEAD))
    for k in STARTS:
        for m in METHODS:
            print(f"| {k} | {m} | " + " | ".join(f"{table[f'start_{k}'][m][str(a)]:.3f}" for a in AHEAD) + " |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
