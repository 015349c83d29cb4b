"""What the model's caches (stae.model.cache) save: streaming 64x64 frames through the vanilla
model with the kernel spectra kept between frames, and with them rebuilt every frame, in
interleaved rounds (a change in the machine's load hits both alike). Writes
benchmarks/results/caches.json.

    .venv/bin/python benchmarks/bench_caches.py [--rounds 5] [--frames 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from stae.machine import describe
from stae.model import build_model


def ms_per_frame(model, frame: torch.Tensor, frames: int, rebuild: bool) -> float:
    state, times = None, []
    with torch.no_grad():
        for _ in range(frames):
            if rebuild:
                model.memory._tiled_spectra.clear()
                for cache in model.flow._spectra:
                    cache.clear()
            t0 = time.perf_counter()
            _, _, state = model.step(frame, state)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[5:]) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/caches.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("conv-1enc-1lstm").eval()
    frame = torch.rand(1, 1, 64, 64)
    rounds = {"cached": [], "rebuilt": []}
    for _ in range(args.rounds):
        rounds["cached"].append(ms_per_frame(model, frame, args.frames, False))
        rounds["rebuilt"].append(ms_per_frame(model, frame, args.frames, True))
    med = {k: statistics.median(v) for k, v in rounds.items()}
    result = {"what": "vanilla model, model.step on 64x64 frames, batch 1, no autograd; ms per frame",
              "median_ms": med, "rebuilt_over_cached": med["rebuilt"] / med["cached"], "rounds_ms": rounds,
              "machine": describe(), "command": "python " + " ".join(sys.argv)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"cached {med['cached']:.2f} ms/frame, rebuilt {med['rebuilt']:.2f} ms/frame "
          f"({med['rebuilt'] / med['cached']:.1f}x); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
