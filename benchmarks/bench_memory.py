"""Peak memory (RSS) of one training step at batch 16 for tau = 10 and tau = 19, with and
without the time-checkpointing option (and the fused-cell peer of fused_cell_peer.py at tau =
10), each measured in a fresh subprocess so peaks do not
mix. The child reads its own ``ru_maxrss`` (peak resident set) after building the model and
data (the baseline) and after two training steps (the peak).

    .venv/bin/python benchmarks/bench_memory.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf_common as pc  # noqa: E402  (first: sets OMP_WAIT_POLICY before torch loads)


from stae.model.config import DIRECT, FAST  # noqa: E402

PRESET = "conv-1enc-1lstm"
BUDGET_GB = 1.5

_CKPT = {"recompute_steps": True}

# (name, ModelConfig overrides, tau, bf16 autocast)
VARIANTS: list[tuple[str, dict, int, bool]] = [
    ("fused-cell peer", DIRECT, 10, False),
    ("direct", DIRECT, 10, False),
    ("fast", FAST, 10, False),
    ("direct", DIRECT, 19, False),
    ("direct+recompute_steps", {**DIRECT, **_CKPT}, 19, False),
    ("fast", FAST, 19, False),
    ("fast+recompute_steps", {**FAST, **_CKPT}, 19, False),
]


def child(overrides: dict, tau: int, batch: int, bf16: bool, threads: int | None, peer: bool = False) -> dict:
    import torch

    from bench_train import make_step
    from fused_cell_peer import from_stae
    from stae.model import build_model

    pc.setup_threads(threads)
    torch.manual_seed(0)
    model = build_model(PRESET, **overrides)
    if peer:
        model = from_stae(model)
    step = make_step(model, batch, tau, bf16)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"baseline_mb": base / 1024, "peak_mb": peak / 1024}  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/memory.json)")
    ap.add_argument("--only", nargs="*", help="variant names to run (default all)")
    ap.add_argument("--taus", type=int, nargs="*", default=None, help="only these tau (default 10 and 19)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # JSON spec: run one measurement
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(spec["overrides"], spec["tau"], args.batch, spec["bf16"], args.threads, spec["peer"])))
        return 0
    m = pc.machine()
    rows = []
    for name, overrides, tau, bf16 in VARIANTS:
        if (args.only and name not in args.only) or (args.taus and tau not in args.taus):
            continue
        spec = json.dumps({"overrides": overrides, "tau": tau, "bf16": bf16, "peer": name == "fused-cell peer"})
        cmd = [sys.executable, __file__, "--child", spec, "--batch", str(args.batch)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        r.update({"variant": name, "tau": tau, "batch": args.batch, "options": overrides,
                  "dtype": "bf16 autocast" if bf16 else "fp32",
                  "peak_gb": r["peak_mb"] / 1024, "within_budget": r["peak_mb"] / 1024 <= BUDGET_GB})
        rows.append(r)
    for r in rows:  # ratios to the peer and to DIRECT at the same tau (peak RSS: lower is better)
        same = {x["variant"]: x["peak_mb"] for x in rows if x["tau"] == r["tau"]}
        r["x_peer"] = r["peak_mb"] / same["fused-cell peer"] if "fused-cell peer" in same else None
        r["x_direct"] = r["peak_mb"] / same["direct"] if "direct" in same else None
    res = {"benchmark": "memory", "preset": PRESET, "budget_gb": BUDGET_GB, "rows": rows, "machine": m}
    path = pc.write_json("memory", res, args.out)
    print(f"peak RSS of a training step, batch {args.batch}, {PRESET}, 64x64 -- {pc.machine_line(m)}")
    print(pc.table(rows, [("variant", "variant"), ("tau", "tau"), ("dtype", "dtype"), ("baseline_mb", "baseline (MB)"),
                          ("peak_mb", "peak RSS (MB)"), ("within_budget", f"<= {BUDGET_GB} GB"),
                          ("x_peer", "x fused-cell peer"), ("x_direct", "x DIRECT")]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
