"""The machine's own convolution peak for the memory's shape, and how close the memory module
gets to it.

* Peak: ``F.conv2d`` of (16, 77, 32, 32) with (180, 77, 7, 7), "same" padding (one ConvLSTM
  step of the vanilla model at batch 16 on a 64x64 clip), fp32 and bf16, NCHW and
  channels-last; achieved GFLOP/s = 2 * N * H * W * C_out * C_in * k^2 / time. The best is
  the machine's measured peak for this shape.
* Memory module: forward + backward of the ConvLSTM over a clip (batch 16, tau = 10) with the
  direct and the FFT convolution. Its rate is given in *direct-equivalent* GFLOP/s: the
  multiply-adds a direct convolution needs (3x the forward: forward, input gradient, weight
  gradient) divided by the whole module's time (gates and nonlinearities included), so a
  ratio above 1 means the module needs less time than the machine's peak direct
  convolution would for its convolutions alone.
* Matrix products: a 1024^3 fp32 GEMM through torch's BLAS (``torch.mm``: MKL in the x86
  wheels) and through oneDNN (``mkldnn_linear``), and the complex ``bmm`` of the streaming
  memory's per-frequency channel mixing (112 frequencies of (16 x 77) @ (77 x 180)); GFLOP/s
  counts 2 real flops per real multiply-add (8 per complex one). On CPUs where MKL does not
  use its widest kernels (AMD) the two libraries differ by 2x or more. The same mixing as
  bfloat16 real block matrices (what bf16 streaming runs: ``bmm`` in oneDNN) and as a grouped
  1x1 convolution (oneDNN's convolution kernels), the alternatives docs/performance.md weighs.
* Streaming's direct alternative: the memory's convolution at batch 1 (one streamed frame),
  fp32 and bf16.

    .venv/bin/python benchmarks/bench_conv.py [--repeats 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf_common as pc  # noqa: E402  (first: sets OMP_WAIT_POLICY before torch loads)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from stae.model.fftconv import bf16_block_spectrum  # noqa: E402
from stae.model.memory import ConvLSTMMemory  # noqa: E402

SHAPE = dict(batch=16, c_in=77, c_out=180, k=7, h=32, w=32)


def conv_flops(batch: int, c_in: int, c_out: int, k: int, h: int, w: int) -> float:
    return 2.0 * batch * h * w * c_out * c_in * k * k


def peak(repeats: int, batch: int = SHAPE["batch"]) -> list[dict]:
    s = {**SHAPE, "batch": batch}
    g = torch.Generator().manual_seed(0)
    x = torch.rand(s["batch"], s["c_in"], s["h"], s["w"], generator=g)
    wt = torch.rand(s["c_out"], s["c_in"], s["k"], s["k"], generator=g) * 0.01
    flops = conv_flops(**s)
    rows = []
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            for fmt, fmt_name in ((torch.contiguous_format, "NCHW"), (torch.channels_last, "channels-last")):
                xx = x.to(dtype).contiguous(memory_format=fmt)
                ww = wt.to(dtype).contiguous(memory_format=fmt)
                t = pc.summary(pc.timed(lambda: F.conv2d(xx, ww, padding=s["k"] // 2), repeats, warmup=2))
                rows.append({"what": f"F.conv2d ({batch},77,32,32) * (180,77,7,7)", "dtype": str(dtype).replace("torch.", ""),
                             "layout": fmt_name, "time_ms": 1e3 * t["median_s"], "gflops": flops / t["median_s"] / 1e9})
    return rows


def matmuls(repeats: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1024, 1024, generator=g), torch.rand(1024, 1024, generator=g)
    xs = torch.randn(112, 16, 77, dtype=torch.complex64, generator=g)
    ws = torch.randn(112, 77, 180, dtype=torch.complex64, generator=g)
    mixing, mix_flops = "spectral mixing 112 x (16,77) @ (77,180)", 8 * 112 * 16 * 77 * 180
    wb = bf16_block_spectrum(ws)  # the bf16 streaming path's kernel: (F, 2 C_in, 2 C_out)
    xb = torch.view_as_real(xs).reshape(112, 16, 2 * 77).bfloat16()  # its input layout
    xg = xb.transpose(1, 2).reshape(1, -1, 16).contiguous()  # (1, F * 2 C_in, N): one group per frequency
    wg = wb.transpose(1, 2).reshape(-1, 2 * 77, 1).contiguous()  # (F * 2 C_out, 2 C_in, 1)
    cases = [("GEMM 1024^3", "BLAS (torch.mm)", lambda: a @ b, 2 * 1024 ** 3),
             (mixing, "complex bmm", lambda: torch.bmm(xs, ws), mix_flops),
             (mixing, "bfloat16 block bmm (oneDNN)", lambda: torch.bmm(xb, wb), mix_flops),
             (mixing, "bfloat16 grouped 1x1 conv (oneDNN)", lambda: F.conv1d(xg, wg, groups=112), mix_flops)]
    if torch.backends.mkldnn.is_available():
        am, bm = a.to_mkldnn(), b.t().contiguous().to_mkldnn()
        cases.insert(1, ("GEMM 1024^3", "oneDNN (mkldnn_linear)", lambda: torch._C._nn.mkldnn_linear(am, bm, None), 2 * 1024 ** 3))
    rows = []
    with torch.inference_mode():
        for what, path, fn, flops in cases:
            t = pc.summary(pc.timed(fn, repeats, warmup=2))
            rows.append({"what": what, "dtype": "bfloat16" if "bfloat16" in path else "float32", "layout": path, "time_ms": 1e3 * t["median_s"],
                         "gflops": flops / t["median_s"] / 1e9})
    return rows


def memory_module(repeats: int, tau: int = 10) -> list[dict]:
    s = SHAPE
    flops_fwd = conv_flops(s["batch"], s["c_in"], s["c_out"], s["k"], s["h"], s["w"]) * tau
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(s["batch"], tau, 32, s["h"], s["w"], generator=g)
    rows = []
    for fft in (False, True):
        torch.manual_seed(0)
        mem = ConvLSTMMemory(32, (45,), 7)
        mem.init_parameters(0.08, 1.0)
        mem.fft = fft
        x = xs.clone().requires_grad_(True)

        def step():
            ms, _ = mem.run(x)
            ms.sum().backward()

        t = pc.summary(pc.timed(step, repeats, warmup=1))
        rows.append({"what": f"ConvLSTM memory fwd+bwd, batch 16, tau={tau}", "dtype": "float32",
                     "layout": "fft_conv" if fft else "direct (fused)", "time_ms": 1e3 * t["median_s"],
                     "gflops": 3 * flops_fwd / t["median_s"] / 1e9})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/conv.json)")
    args = ap.parse_args(argv)
    pc.setup_threads(args.threads)
    m = pc.machine()
    peaks = peak(args.repeats)
    best = max(peaks, key=lambda r: r["gflops"])
    mems = memory_module(max(2, args.repeats // 2)) + matmuls(args.repeats) + peak(args.repeats, batch=1)
    for r in peaks + mems:
        r["x_peak"] = r["gflops"] / best["gflops"]
    res = {"benchmark": "conv", "shape": SHAPE, "peak_gflops": best["gflops"],
           "peak_config": f"{best['dtype']} {best['layout']}", "rows": peaks + mems, "machine": m}
    path = pc.write_json("conv", res, args.out)
    print(f"convolution peak and memory-module efficiency -- {pc.machine_line(m)}")
    print(pc.table(peaks + mems, [("what", "what"), ("dtype", "dtype"), ("layout", "layout / path"),
                                  ("time_ms", "time (ms, median)"), ("gflops", "GFLOP/s (direct-equivalent)"),
                                  ("x_peak", "x machine peak")]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
