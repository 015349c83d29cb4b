"""Run every performance benchmark (each in a fresh process), then print one summary table
with the targets of docs/performance.md and write benchmarks/results/summary.{json,md}.

    .venv/bin/python benchmarks/run_all.py [--quick] [--threads N] [--skip NAME ...] [--results DIR]

The summary opens with the headline of issue 16: stae's training rate (batch 16, fp32),
streaming rate (64x64, batch 1) and peak memory as ratios to the fused-cell peer
(fused_cell_peer.py) and to stae DIRECT, all from the same run, with the CPU's model name.
``--results DIR`` writes every JSON and the summary there instead (smoke runs on a loaded
machine: keep them out of benchmarks/results/). The time-to-quality benchmark is separate
(about 30 minutes): ``benchmarks/time_to_quality.py``.

(``make bench`` runs this.) Per-benchmark JSON files land in benchmarks/results/. Figures are
medians over repeats; the machine's load average before and after each benchmark is recorded,
because the machine may be shared. ``bench_data.py`` and ``bench_textures.py`` (data-layer throughput) are run too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import perf_common as pc  # noqa: E402

# name -> (script, normal args, quick args)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "conv": ("bench_conv.py", ["--repeats", "5"], ["--repeats", "2"]),
    "train": ("bench_train.py", ["--rounds", "3"], ["--rounds", "1"]),
    "stream": ("bench_stream.py", ["--seconds", "4"], ["--seconds", "1"]),
    "memory": ("bench_memory.py", [], []),
    "bf16": ("bench_bf16.py", ["--steps", "300"], ["--steps", "30", "--eval-every", "10"]),
    "data": ("bench_data.py", [], ["--num", "200"]),
    "textures": ("bench_textures.py", [], ["--num", "100"]),
    "profile": ("profile_train.py", ["--rounds", "5", "--threads", "1"], ["--rounds", "1", "--steps", "1", "--threads", "1"]),
}


RESULTS = pc.RESULTS  # where the JSON files are read and written (--results)


def _load(name: str) -> dict | None:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def headline(train: dict | None, stream: dict | None, memory: dict | None) -> list[dict]:
    """Issue 16's table: stae (defaults) against the fused-cell peer and DIRECT, same run."""
    rows: list[dict] = []

    def add(what, stae, peer, direct, unit, target="", met=None):
        rows.append({"what": what, "stae": stae, "peer": peer, "direct": direct, "unit": unit,
                     "x_peer": stae / peer if stae and peer else None,
                     "x_direct": stae / direct if stae and direct else None,
                     "target": target, "met": None if met is None else ("yes" if met else "NO")})

    if train:
        r = {x["variant"]: x["seq_per_s"] for x in train["rows"]}
        peer = r.get("peer-b16-fp32")
        # The target is on stae's defaults; the image-space head and rollout training (the
        # other issues' models: different work per sequence) are shown beside them.
        for name, direct, what, targeted in (
                ("fast-b16-fp32", "default-b16-fp32", "loss on every prediction", True),
                ("fast-b16-fp32-last", "default-b16-fp32-last", "loss on the last prediction, as the peer", True),
                ("fast-b16-fp32-image", "default-b16-fp32", "image-space head (video-gray64)", False),
                ("fast-b16-fp32-rollout", "default-b16-fp32", "rollout training, 10 fed back (20-frame clips)", False)):
            if name in r:
                x = r[name] / peer if peer and targeted else None
                add(f"training, batch 16, fp32, {what}", r[name], peer, r.get(direct), "sequences/s",
                    ">= 3x peer" if targeted else "", None if x is None else x >= 3)
    if stream:
        r = {x["variant"]: x["fps"] for x in stream["rows"] if x["size"] == "64x64"}
        if "fast-fp32" in r:
            add("streaming step, 64x64, batch 1", r["fast-fp32"], r.get("peer"), r.get("direct-fp32"), "frames/s",
                ">= 400 frames/s", r["fast-fp32"] >= 400)
        if "fast-bf16" in r:  # not exact: bfloat16 convolutions and spectral mixing (docs/performance.md)
            add("streaming step, 64x64, batch 1, bf16 autocast", r["fast-bf16"], r.get("peer"), r.get("direct-fp32"),
                "frames/s", ">= 400 frames/s", r["fast-bf16"] >= 400)
    if memory:
        r = {x["variant"]: x["peak_mb"] for x in memory["rows"] if x["tau"] == 10}
        if "fast" in r:
            add("peak RSS, training step, batch 16, tau = 10 (lower is better)", r["fast"], r.get("fused-cell peer"),
                r.get("direct"), "MB")
    return rows


HEADLINE_COLUMNS = [("what", "measurement"), ("stae", "stae defaults"), ("peer", "fused-cell peer"),
                    ("direct", "stae DIRECT"), ("unit", "unit"), ("x_peer", "x peer"), ("x_direct", "x DIRECT"),
                    ("target", "target"), ("met", "met")]


def _row(res: dict | None, key: str, value) -> dict | None:
    if res is None:
        return None
    for r in res["rows"]:
        if all(r.get(k) == v for k, v in zip(key.split("|"), value)):
            return r
    return None


def summarise() -> tuple[list[dict], dict]:
    """The headline figures and targets from the per-benchmark JSON files."""
    conv, train, stream, memory, bf16 = (_load(n) for n in ("conv", "train", "stream", "memory", "bf16"))
    rows: list[dict] = []

    def add(what: str, value, unit: str, ratio=None, ratio_of: str = "", target: str = "", met=None) -> None:
        rows.append({"what": what, "value": value, "unit": unit, "ratio": ratio, "ratio_of": ratio_of,
                     "target": target, "met": None if met is None else ("yes" if met else "NO")})

    if train:
        ref = _row(train, "variant", ["reference"])
        if ref:
            add("training, reference (8 gate convs, fp32, batch 1)", ref["seq_per_s"], "sequences/s", 1.0, "reference")
        for r in train["rows"]:
            if r["variant"] == "reference":
                continue
            target = ">= 3x reference" if ref and r["variant"] == train.get("best") else ""
            add(f"training, {r['implementation']}, batch {r['batch']}, {r['dtype']}", r["seq_per_s"], "sequences/s",
                r["x_reference"], "reference" if ref else "", target, r["x_reference"] >= 3 if target else None)
    if conv:
        for r in conv["rows"]:
            is_mem = r["what"].startswith("ConvLSTM")
            target = ">= 0.6x peak" if is_mem and r["layout"] == "fft_conv" else ""
            unit = "GFLOP/s (direct-equiv.)" if r["what"].startswith(("F.conv2d", "ConvLSTM")) else "GFLOP/s"
            add(f"{r['what']}, {r['dtype']}, {r['layout']}", r["gflops"], unit, r["x_peak"],
                "machine conv peak", target, r["x_peak"] >= 0.6 if target else None)
    if stream:
        best64 = max((r for r in stream["rows"] if r["size"] == "64x64" and r["variant"] not in ("reference", "peer")),
                     key=lambda r: r["fps"])
        for r in stream["rows"]:
            target = ">= 400 frames/s" if r is best64 else ""
            add(f"streaming step, {r['variant']}, {r['size']}, batch 1 (latency median {r['latency_median_ms']:.2f} ms, "
                f"p95 {r['latency_p95_ms']:.2f} ms)", r["fps"], "frames/s", r["x_reference"], "reference", target,
                r["fps"] >= 400 if target else None)
    if memory:
        for r in memory["rows"]:
            add(f"peak RSS, training step, {r['variant']}, batch {r['batch']}, tau={r['tau']}", r["peak_mb"], "MB",
                r["peak_gb"] / memory["budget_gb"], "1.5 GB budget", "<= 1.5 GB", r["within_budget"])
    if bf16:
        f32, b16 = bf16["rows"][:2]
        add(f"bf16 vs fp32 validation loss, {bf16['steps']} steps ({f32['val_loss']:.4g} vs {b16['val_loss']:.4g})",
            100 * bf16["val_loss_rel_diff"], "% difference", b16["val_loss"] / f32["val_loss"], "fp32", "<= 2 %",
            bf16["within_2_percent"])
        if bf16.get("fp32_seed_rel_diff") is not None:
            add("fp32 vs fp32 with another seed, validation loss (run-to-run spread)", 100 * bf16["fp32_seed_rel_diff"],
                "% difference", bf16["rows"][2]["val_loss"] / f32["val_loss"], "fp32")
    machine = (train or conv or stream or memory or bf16 or {}).get("machine", pc.machine())
    return rows, machine, headline(train, stream, memory)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, not for the record)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    ap.add_argument("--skip", nargs="*", default=[], choices=sorted(BENCHES), help="benchmarks to skip")
    ap.add_argument("--summary-only", action="store_true", help="only summarise existing results/*.json")
    ap.add_argument("--results", default=None, help="directory of the JSON files and the summary (default benchmarks/results)")
    args = ap.parse_args(argv)
    global RESULTS
    if args.results:
        RESULTS = Path(args.results).resolve()
        RESULTS.mkdir(parents=True, exist_ok=True)
    loads = {}
    if not args.summary_only:
        for name, (script, normal, quick) in BENCHES.items():
            if name in args.skip:
                continue
            cmd = [sys.executable, str(HERE / script)] + (quick if args.quick else normal)
            if args.threads and name not in ("data", "textures", "profile"):
                cmd += ["--threads", str(args.threads)]
            if args.results:
                cmd += ["--out", str(RESULTS / f"{name}.json")]
            before = list(__import__("os").getloadavg())
            t0 = time.perf_counter()
            print(f"== {name}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}", flush=True)
            env = dict(__import__("os").environ)
            if pc.OMP_WAIT_POLICY_FROM_USER is None:  # let each benchmark choose its own default
                env.pop("OMP_WAIT_POLICY", None)
            rc = subprocess.run(cmd, env=env).returncode
            loads[name] = {"loadavg_before": before, "seconds": time.perf_counter() - t0, "returncode": rc}
            if rc != 0:
                print(f"run_all: {name} failed with exit code {rc}", file=sys.stderr)
    rows, machine, head = summarise()
    md = [f"Machine: {pc.machine_line(machine)}", "",
          f"stae against the fused-cell peer and DIRECT, measured in the same run on **{machine.get('cpu')}**:", "",
          pc.table(head, HEADLINE_COLUMNS), "",
          pc.table(rows, [("what", "measurement"), ("value", "value"), ("unit", "unit"), ("ratio", "ratio"),
                          ("ratio_of", "ratio to"), ("target", "target"), ("met", "met")])]
    text = "\n".join(md)
    print("\n" + text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.md").write_text(text + "\n")
    pc.write_json("summary", {"benchmark": "summary", "headline": head, "rows": rows, "runs": loads, "machine": machine},
                  str(RESULTS / "summary.json"))
    return 0 if all(v["returncode"] == 0 for v in loads.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
