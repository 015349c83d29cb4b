"""Data-layer throughput on one core: Moving MNIST generation (the requirement: >= 1,000
sequences of 20 frames per second, so generation never bottlenecks training), file writing,
and real-video clip reading.

    .venv/bin/python benchmarks/bench_data.py [--num 2000] [--out benchmarks/results/data.json]

Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse

import perf_common as pc  # first: pins the thread pools before numpy/torch load

pc.one_thread()

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from stae.machine import describe  # noqa: E402


def make_video(path: Path, n: int = 200, h: int = 240, w: int = 320) -> None:
    import av

    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    # A smooth random texture panning across the frame: closer to real footage than pixel
    # noise (which no codec compresses and which decodes several times slower).
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, ((h + 64) // 8, (w + 64) // 8, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((w + 64, h + 64), Image.Resampling.BICUBIC))
    for t in range(n):
        frame = np.ascontiguousarray(base[t % 64:t % 64 + h, (2 * t) % 64:(2 * t) % 64 + w])
        for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=2000, help="sequences per generation measurement")
    ap.add_argument("--batch", type=int, default=256, help="sequences per generate() call")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/data.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from torch.utils.data import DataLoader

    from stae.data import MovingMNIST, generate, load_digits, read_frames, save_moving_mnist
    from stae.data.video import VideoClipDataset, probe

    n = args.num
    digits = load_digits("train")
    rows: list[tuple[str, float, str]] = []

    bs = args.batch

    def gen_rate(**kw) -> float:
        # Batches of `bs`, as a DataLoader or save_moving_mnist asks for them (one call for
        # thousands of sequences would mostly measure page faults of a ~1 GB result).
        return n / pc.best_of(lambda: [generate(0, np.arange(s, min(n, s + bs)), digits=digits, **kw) for s in range(0, n, bs)])

    rows.append((f"generate: frames (2 digits, 20x64x64), batch {bs}", gen_rate(), "seq/s"))
    rows.append((f"generate: frames + masks + flow, batch {bs}", gen_rate(with_truth=True), "seq/s"))
    rows.append((f"generate: lines + binary, batch {bs}", gen_rate(lines=True, binary=True), "seq/s"))

    ds = MovingMNIST(n, seed=0, digits=digits)
    loader = DataLoader(ds, batch_size=32, num_workers=0)
    rows.append(("MovingMNIST + DataLoader (batch 32, tensors)", n / pc.best_of(lambda: [b for b in loader], 2), "seq/s"))
    m = min(n, 500)
    rows.append(("MovingMNIST ds[i], one at a time", m / pc.best_of(lambda: [ds[i] for i in range(m)], 2), "seq/s"))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        save_moving_mnist(tmp / "mm.npz", n, 0, truth=True)
        rows.append(("save_moving_mnist with truth (.npz)", n / (time.perf_counter() - t0), "seq/s"))

        video = tmp / "v.mp4"
        make_video(video)
        t0 = time.perf_counter()
        info = probe(video)
        rows.append(("video index (demux 200 frames 320x240 h264)", (time.perf_counter() - t0) * 1e3, "ms"))
        starts = np.random.default_rng(0).integers(0, info.num_frames - 20, 10)
        dt = pc.best_of(lambda: [read_frames(video, int(s), 20, size=(64, 64), info=info) for s in starts], 2)
        rows.append(("video clip read (20 frames -> 64x64 gray, seek)", dt / len(starts) * 1e3, "ms/clip"))
        vds = VideoClipDataset(video, clip_len=20, split="all")
        rows.append(("VideoClipDataset clips/s", len(vds) / pc.best_of(lambda: [vds[i] for i in range(len(vds))], 2), "clips/s"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>10}  unit")
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:>10.1f}  {unit}")
    result = {
        "machine": {**describe(), "numpy": np.__version__},
        "num_sequences": n,
        "batch": bs,
        "results": [{"name": name, "value": round(value, 2), "unit": unit} for name, value, unit in rows],
        "requirement": {"generate_frames_seq_per_s_min": 1000, "met": rows[0][1] >= 1000 and rows[1][1] >= 1000},
    }
    print(f"wrote {pc.write_json('data', result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
