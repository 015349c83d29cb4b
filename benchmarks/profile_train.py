"""Where a batch-16 training step spends its time (issue 16, item 3).

Two views of one step of stae's ``train_step`` (vanilla preset, 64x64, tau = 10, batch 16, fp32,
eq. (5) loss on every prediction, RMSprop), as in bench_train.py:

1. **Components**, each timed alone, forward + backward, with the shapes it has inside the step:
   E on the B*T frames, the memory over the clip, Theta, the warp (GG + S), D, the loss, the
   optimiser step; and the whole step. Components and the whole step are timed in interleaved
   rounds (medians of wall and of CPU time; shares are of CPU time, which other processes
   disturb much less), so a change of the machine's load touches all alike; "rest" = whole
   step minus the sum (Python, autograd bookkeeping, the glue between modules).
2. **Operators**: ``torch.profiler`` of whole steps, self CPU time per operator (forward and
   backward), grouped into named kinds (FFTs, complex matmuls, convolutions, gate pointwise
   math, grid_sample, optimiser, copies/layout).

    .venv/bin/python benchmarks/profile_train.py [--threads 2] [--rounds 5] [--set fft_conv=false] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf_common as pc  # noqa: E402  (first: sets OMP_WAIT_POLICY before torch loads)

import torch  # noqa: E402

from bench_train import make_step  # noqa: E402
from stae.losses import LossWeights, objective  # noqa: E402
from stae.model import build_model  # noqa: E402
from stae.model.warp import warp  # noqa: E402
from stae.training.run_config import parse_value  # noqa: E402

PRESET = "conv-1enc-1lstm"

# operator name fragments -> kind (first match wins; names as torch.profiler reports them)
KINDS = [
    ("FFT (rfft2 / irfft2 and their backward)", ("fft",)),
    ("complex matmul (spectral mixing, kernel spectra)", ("bmm", "baddbmm", "matmul", "mm")),
    ("direct convolution (E, D, Theta 1x1; DIRECT memory)", ("conv", "mkldnn")),
    ("gate pointwise math (sigmoid, tanh, mul, add)", ("sigmoid", "tanh", "mul", "add", "sub", "div", "where")),
    ("grid_sample (warp) fwd + bwd", ("grid_sampler",)),
    ("optimiser", ("rmsprop", "addcmul", "sqrt", "_foreach")),
    ("copies, layout, cat/stack", ("copy", "cat", "stack", "clone", "contiguous", "permute", "reshape", "view",
                                    "slice", "index", "select", "split", "chunk", "pad", "fill", "zero", "empty")),
]


def components(model, batch: int, tau: int) -> dict[str, Callable[[], None]]:
    """Forward + backward of each part of the model alone, on the shapes of a training step."""
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(batch * tau, 1, 64, 64, generator=g)
    x = model.encoder(frames).detach().requires_grad_()
    ms = model.memory.run(x.unflatten(0, (batch, tau)))[0].detach().flatten(0, 1).requires_grad_()
    flow = model.flow(ms).detach().requires_grad_()
    warped = warp(x, flow, model.config.warp_padding).detach().requires_grad_()
    logits = model.decoder(warped).detach().requires_grad_()
    target = torch.rand(batch, tau, 1, 64, 64, generator=g)
    params = list(model.parameters())
    opt = torch.optim.RMSprop(params, lr=1e-4)
    for p in params:
        p.grad = torch.zeros_like(p)

    def bwd(y):
        y.backward(torch.ones_like(y))

    return {
        "E (encoder) fwd+bwd": lambda: bwd(model.encoder(frames.requires_grad_(False))),
        "memory (ConvLSTM over the clip) fwd+bwd": lambda: bwd(model.memory.run(x.unflatten(0, (batch, tau)))[0]),
        "Theta fwd+bwd": lambda: bwd(model.flow(ms)),
        "warp (GG+S) fwd+bwd": lambda: bwd(warp(x, flow, model.config.warp_padding)),
        "D (decoder) fwd+bwd": lambda: bwd(model.decoder(warped)),
        "loss fwd+bwd": lambda: objective(logits.unflatten(0, (batch, tau)), logits.unflatten(0, (batch, tau)),
                                          flow.unflatten(0, (batch, tau)), target, LossWeights())["total"].backward(),
        "optimiser step": opt.step,
    }


def time_components(model, batch: int, tau: int, rounds: int) -> list[dict]:
    parts = components(model, batch, tau)
    parts["whole training step"] = make_step(model, batch, tau, False)
    for fn in parts.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in parts}
    cpu: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(rounds):
        for k, fn in parts.items():
            c0 = time.process_time()
            times[k] += pc.timed(fn, repeats=1, warmup=0)
            cpu[k].append(time.process_time() - c0)
    # CPU seconds (all threads) are the share's basis: much less sensitive than wall time to
    # other processes on the machine; with one thread they are the work itself.
    med = {k: pc.summary(v)["median_s"] for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    whole, whole_cpu = med.pop("whole training step"), mcpu.pop("whole training step")
    rows = [{"part": k, "median_s": v, "cpu_s": mcpu[k], "share": mcpu[k] / whole_cpu} for k, v in med.items()]
    rest, rest_cpu = whole - sum(med.values()), whole_cpu - sum(mcpu.values())
    rows.append({"part": "rest (Python, autograd, glue) = whole - parts", "median_s": rest, "cpu_s": rest_cpu,
                 "share": rest_cpu / whole_cpu})
    rows.append({"part": "whole training step", "median_s": whole, "cpu_s": whole_cpu, "share": 1.0})
    return rows


def operators(model, batch: int, tau: int, steps: int) -> tuple[list[dict], list[dict]]:
    """Self CPU time per operator over ``steps`` profiled steps: top operators and kinds."""
    from torch.profiler import ProfilerActivity, profile

    step = make_step(model, batch, tau, False)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    ev = [(e.key, e.self_cpu_time_total / 1e6 / steps, e.count // steps) for e in prof.key_averages()]
    total = sum(t for _, t, _ in ev)
    ev.sort(key=lambda r: -r[1])
    top = [{"op": k, "self_s_per_step": t, "share": t / total, "calls_per_step": n} for k, t, n in ev[:25]]
    kinds: dict[str, float] = {}
    for name, t, _ in ev:
        low = name.lower()
        kind = next((kd for kd, frags in KINDS if any(f in low for f in frags)), "other")
        kinds[kind] = kinds.get(kind, 0.0) + t
    krows = [{"kind": k, "self_s_per_step": v, "share": v / total} for k, v in sorted(kinds.items(), key=lambda x: -x[1])]
    return top, krows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the component timings (default 5)")
    ap.add_argument("--steps", type=int, default=3, help="profiled steps (default 3)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tau", type=int, default=10)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="ModelConfig override, field=value")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/profile_train.json)")
    args = ap.parse_args(argv)
    pc.setup_threads(args.threads)
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.sets)}
    torch.manual_seed(0)
    model = build_model(PRESET, **overrides)
    rows = time_components(model, args.batch, args.tau, args.rounds)
    top, kinds = operators(model, args.batch, args.tau, args.steps)
    m = pc.machine()
    res = {"benchmark": "profile_train", "preset": PRESET, "batch": args.batch, "tau": args.tau,
           "options": {k: getattr(model.config, k) for k in ("fft_conv", "subpixel_decoder", "recompute_steps")},
           "components": rows, "operator_kinds": kinds, "top_operators": top, "machine": m}
    path = pc.write_json("profile_train", res, args.out)
    print(f"training step profile, batch {args.batch}, tau {args.tau}, {json.dumps(res['options'])} -- "
          f"{pc.machine_line(m)}")
    print(pc.table(rows, [("part", "part"), ("median_s", "wall (s, median)"), ("cpu_s", "CPU (s, median)"),
                          ("share", "share of the step's CPU time")]))
    print(pc.table(kinds, [("kind", "operator kind"), ("self_s_per_step", "self CPU s/step"), ("share", "share")]))
    print(pc.table(top, [("op", "operator"), ("self_s_per_step", "self CPU s/step"), ("share", "share"),
                         ("calls_per_step", "calls/step")]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
