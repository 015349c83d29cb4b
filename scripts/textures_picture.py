"""Draw docs/img/textures.png: a few generated texture sequences with their ground truth.

    .venv/bin/python scripts/textures_picture.py [--out docs/img/textures.png]

Rows: training sequences 0-3 of seed 0 (two grey, two colour), 64x64. Columns: frames 0, 5
and 10, then for the pair (9, 10): the layer owner map of frame 10, the true backward flow
(Middlebury colours, one scale for the figure), the occlusion mask (white = occluded) and
|warp(frame 9, flow) - frame 10| (x4, on non-occluded pixels). Deterministic; offline; a
second or two on one thread.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stae.data import textures as tx
from stae.flowio import flow_to_color
from stae.model.warp import warp
from stae.viz import grid_image, save_png, to_rgb_uint8

# Distinct colours for layer 0 (background) .. 3.
LAYER_COLOURS = np.array([[60, 60, 60], [230, 159, 0], [86, 180, 233], [0, 158, 115]], np.uint8)


def row(g: dict, b: int, radius: float) -> list[np.ndarray]:
    f = torch.from_numpy(g["frames"][b]).float() / 255.0
    flow = torch.from_numpy(g["flow"][b, 9])
    occ = g["occlusion"][b, 9]
    err = (warp(f[9][None], flow[None])[0] - f[10]).abs().amax(0).numpy() * 4
    err[occ] = 0
    return [to_rgb_uint8(f[0]), to_rgb_uint8(f[5]), to_rgb_uint8(f[10]), LAYER_COLOURS[g["owner"][b, 10]],
            flow_to_color(flow[None], max_radius=radius, convention="backward"),
            to_rgb_uint8(occ.astype(np.float32)), to_rgb_uint8(err)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img" / "textures.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    grey = tx.generate(0, [0, 1], with_truth=True)
    colour = tx.generate(0, [2, 3], with_truth=True, channels=3)
    radius = float(max(np.linalg.norm(g["flow"][:, 9], axis=1).max() for g in (grey, colour)))
    cells = [row(grey, 0, radius), row(grey, 1, radius), row(colour, 0, radius), row(colour, 1, radius)]
    labels = ["frame 0", "frame 5", "frame 10", "layers", "flow 9<-10", "occlusion", "warp err x4"]
    save_png(grid_image(cells, col_labels=labels, scale=2), args.out)
    print(f"wrote {args.out} (flow colour scale: {radius:.1f} px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
