"""``stae warp-check``: the paper's sanity check of the grid generator and sampler (Sec. 4,
Fig. 3): warp a frame with the true flow through the model's own sampler and report the mean
per-pixel error. The check itself, its conventions and its two modes: :mod:`stae.warp_check`."""

from __future__ import annotations

import argparse
from pathlib import Path

from stae.commands import number
from stae.errors import StaeError
from stae.warp_check import FIGURE_NAME, JSON_NAME, PAPER_SINTEL_ERROR, folder_pairs, warp_check


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "warp-check",
        help="warp a frame with the true flow through the model's sampler and report the error",
        description=(
            "Sanity check of the grid generator + sampler (paper Sec. 4, Fig. 3). Give FRAME FLOW "
            "NEXT (two images and the forward .flo flow from FRAME to NEXT), or one DIR of "
            "Sintel-style frame_0001.png ... with frame_0001.flo ... (flow from frame N to N+1). "
            "Prints the mean per-pixel absolute error (pixels in [0, 1]) and writes "
            "warp_check.json and warp_check.png (Fig. 3-style) to --out."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="FRAME FLOW NEXT, or a single DIR")
    p.add_argument("--out", default="warp-check", help="output directory (default: ./warp-check)")
    p.add_argument(
        "--mode", choices=("reconstruct", "predict"), default="reconstruct",
        help="reconstruct: warp(NEXT, F) vs FRAME (exact for forward flow; default); "
        "predict: warp(FRAME, -F) vs NEXT (first-order approximation)",
    )
    p.add_argument(
        "--flow-dir", default=None,
        help="DIR mode only: where the .flo files are (Sintel keeps them in training/flow/<seq>; "
        "default: DIR itself)",
    )
    p.add_argument(
        "--max-radius", type=number(0, 10**6, above=True), default=None,
        help="flow magnitude (pixels) drawn at full colour in the figure (default: the flow's maximum)",
    )
    p.add_argument("--force", action="store_true", help="overwrite warp_check.json and warp_check.png in --out")
    p.set_defaults(func=run)


def _pairs(args: argparse.Namespace) -> list[tuple[Path, Path, Path]]:
    """The (FRAME, FLOW, NEXT) triples named by PATH... and --flow-dir."""
    paths = [Path(p) for p in args.paths]
    if len(paths) == 3:
        if args.flow_dir is not None:
            raise StaeError("--flow-dir applies only to the DIR form (stae warp-check DIR)")
        return [(paths[0], paths[1], paths[2])]
    if len(paths) != 1:
        raise StaeError(f"warp-check takes FRAME FLOW NEXT or one DIR; got {len(paths)} paths")
    if not paths[0].is_dir():
        raise StaeError(f"{paths[0]}: not a directory (give FRAME FLOW NEXT, or one directory)")
    flow_dir = Path(args.flow_dir) if args.flow_dir else paths[0]
    if not flow_dir.is_dir():
        raise StaeError(f"--flow-dir {flow_dir}: not a directory")
    return folder_pairs(paths[0], flow_dir)


def run(args: argparse.Namespace) -> int:
    pairs = _pairs(args)
    if args.max_radius is not None and not args.max_radius > 0:
        raise StaeError(f"--max-radius must be positive, got {args.max_radius}")
    s = warp_check(pairs, args.out, args.mode, args.max_radius, force=args.force)
    if len(pairs) > 1:
        for r in s["pairs"]:
            print(f"{Path(r['frame']).name} -> {Path(r['next']).name}: mean abs error {r['mean_abs_error']:.5f} "
                  f"(valid {100 * r['valid_fraction']:.1f}%), all pixels {r['mean_abs_error_all_pixels']:.5f}")
    n = s["num_pairs"]
    print(f"warp-check ({args.mode}, {n} pair{'s' * (n != 1)}): "
          f"mean abs error {s['mean_abs_error']:.5f} over valid pixels "
          f"({100 * s['valid_fraction']:.1f}%), {s['mean_abs_error_all_pixels']:.5f} over all pixels "
          f"(paper, Sintel: {PAPER_SINTEL_ERROR})")
    out = Path(args.out)
    print(f"wrote {out / JSON_NAME} and {out / FIGURE_NAME}")
    return 0
