"""Training throughput of the vanilla model (64x64, tau = 10, eq. (5) loss on every step):
seconds per sequence of forward + backward + AdamW step, by batch size, autocast dtype and
CPU threads. Adds a "throughput" entry to benchmarks/results/recipes.json.

    python benchmarks/recipe_throughput.py [--updates 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from stae.training import load_config, make_optimizer
from stae.training.loop import loss_weights, train_step
from stae.model.autoencoder import SpatioTemporalAutoencoder

SETTINGS = [  # (threads, batch size, amp)
    (1, 1, "fp32"), (1, 4, "fp32"), (1, 8, "fp32"), (1, 4, "bf16"), (2, 4, "fp32"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/recipes.json")
    args = ap.parse_args()
    rows = []
    for threads, bs, amp in SETTINGS:
        torch.set_num_threads(threads)
        cfg = load_config(None, [f"train.batch_size={bs}", f"train.amp={amp}"])
        torch.manual_seed(0)
        model = SpatioTemporalAutoencoder(cfg.model)
        opt = make_optimizer(model.parameters(), cfg.train)
        w = loss_weights(cfg)
        clip = torch.rand(bs, 11, 1, 64, 64)
        dtype = torch.bfloat16 if amp == "bf16" else None
        times = []
        for i in range(args.updates + 1):
            t0 = time.perf_counter()
            train_step(model, opt, clip, cfg, w, i, amp_dtype=dtype)
            times.append(time.perf_counter() - t0)
        s_per_seq = sum(times[1:]) / args.updates / bs
        rows.append({"threads": threads, "batch_size": bs, "amp": amp, "s_per_sequence": s_per_seq})
        print(rows[-1], flush=True)
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["throughput"] = {"note": "shared 2-core machine, other jobs running: compare rows, not absolute values",
                         "cpu_bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else None,
                         "rows": rows}
    out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
