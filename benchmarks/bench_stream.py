"""Streaming inference: frames/s and per-frame latency (median, 95th percentile) of
``model.step(frame, state)`` at batch 1 (variants streamed in interleaved rounds), for 64x64 and 256x256 frames, vanilla preset, with
stae's default path, its performance options, the reference implementation's per-step
computation (eight gate convolutions) and the fused-cell peer's ``step`` (one fused
convolution; ``fused_cell_peer.py``). Every row also gives its ratio to the peer and to stae
DIRECT at the same frame size.

    .venv/bin/python benchmarks/bench_stream.py [--seconds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Streaming is latency-bound on many small ops: waiting threads spin (ACTIVE) rather than
# sleep, which measured 110 -> 202 frames/s for 64x64 on two idle cores (perf_common's
# PASSIVE default suits throughput on a shared machine). An explicit setting wins.
import os  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import perf_common as pc  # noqa: E402  (sets OMP_WAIT_POLICY before torch loads)

import torch  # noqa: E402

from fused_cell_peer import from_stae  # noqa: E402
from reference_model import ReferenceModel  # noqa: E402
from stae.model.config import DIRECT, FAST  # noqa: E402
from stae.model import build_model  # noqa: E402
from stae.model.warp import warp  # noqa: E402

PRESET = "conv-1enc-1lstm"

# (name, ModelConfig overrides, under bf16 autocast: E/D's convolutions and the memory's
# spectral mixing in bfloat16 -- not exact, docs/performance.md)
VARIANTS: list[tuple[str, dict, bool]] = [
    ("reference", DIRECT, False),
    ("peer", DIRECT, False),
    ("direct-fp32", DIRECT, False),
    ("fft-fp32", {**DIRECT, "fft_conv": True}, False),
    ("fast-fp32", FAST, False),
    ("fast-bf16", FAST, True),
]


def reference_stepper(model: torch.nn.Module):
    """The reference's per-frame computation (E, 8-conv ConvLSTM, Theta, warp, D)."""
    ref = ReferenceModel(model).eval()

    def step(frame, state):
        x = ref.encoder(frame)
        st = state or [None] * len(ref.cells)
        inp = x
        for k, cell in enumerate(ref.cells):
            st[k] = cell(inp, st[k])
            inp = st[k][0]
        flow = ref.flow(inp)
        return ref.decoder(warp(x, flow)), flow, st

    return step


class Stream:
    """One variant's stream of random frames, continued across interleaved rounds."""

    def __init__(self, step, size: int, bf16: bool = False, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.step, self.frames, self.state, self.k, self.lat = step, torch.rand(16, 1, 1, size, size, generator=g), None, 0, []
        self.bf16 = bf16
        self.run_for(0.0, min_frames=5)  # warm-up, not recorded
        self.lat = []

    @torch.inference_mode()
    def run_for(self, seconds: float, min_frames: int = 1) -> None:
        t_end = time.perf_counter() + seconds
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            self._frames_until(t_end, min_frames)

    def _frames_until(self, t_end: float, min_frames: int) -> None:
        n = 0
        while time.perf_counter() < t_end or n < min_frames:
            t0 = time.perf_counter()
            _, _, self.state = self.step(self.frames[self.k % 16], self.state)
            self.lat.append(time.perf_counter() - t0)
            self.k, n = self.k + 1, n + 1

    def result(self) -> dict:
        s = pc.summary(self.lat)
        return {"frames": s["n"], "latency_median_ms": 1e3 * s["median_s"], "latency_p95_ms": 1e3 * s["p95_s"],
                "fps": 1.0 / s["median_s"], "fps_mean": len(self.lat) / sum(self.lat)}


def run(seconds: float, sizes: list[int], rounds: int = 5) -> dict:
    """Every variant streams for ``seconds`` in total, in ``rounds`` interleaved slices, so that a
    change of the machine's load touches all variants alike."""
    rows = []
    for size in sizes:
        streams = {}
        for name, overrides, bf16 in VARIANTS:
            torch.manual_seed(0)
            model = build_model(PRESET, **overrides).eval()
            step = {"reference": reference_stepper, "peer": lambda m: from_stae(m).eval().step}.get(
                name, lambda m: m.step)(model)
            streams[name] = Stream(step, size, bf16)
        for _ in range(rounds):
            for st in streams.values():
                st.run_for(seconds / rounds, min_frames=4)
        ref_fps = None
        for name, overrides, _ in VARIANTS:
            r = streams[name].result()
            r.update({"variant": name, "size": f"{size}x{size}", "batch": 1, "options": overrides})
            if name == "reference":
                ref_fps = r["fps"]
            r["x_reference"] = r["fps"] / ref_fps if ref_fps else None
            rows.append(r)
    for r in rows:
        same = {x["variant"]: x["fps"] for x in rows if x["size"] == r["size"]}
        r["x_peer"] = r["fps"] / same["peer"] if "peer" in same else None
        r["x_direct"] = r["fps"] / same["direct-fp32"] if "direct-fp32" in same else None
    return {"benchmark": "stream", "preset": PRESET, "rows": rows}


COLUMNS = [("variant", "variant"), ("size", "frame"), ("fps", "frames/s (1/median)"),
           ("latency_median_ms", "latency median (ms)"), ("latency_p95_ms", "p95 (ms)"),
           ("x_reference", "x reference"), ("x_peer", "x fused-cell peer"), ("x_direct", "x DIRECT")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="streaming time per variant and size (default 3)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 256], help="frame sizes (default 64 256)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds the streaming time is cut into (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/stream.json)")
    args = ap.parse_args(argv)
    pc.setup_threads(args.threads)
    m = pc.machine()
    res = run(args.seconds, args.sizes, args.rounds)
    res["machine"] = m
    path = pc.write_json("stream", res, args.out)
    print(f"streaming inference, batch 1, {PRESET} -- {pc.machine_line(m)}")
    print(pc.table(res["rows"], COLUMNS))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
