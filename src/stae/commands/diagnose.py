"""``stae diagnose``: is a model's flow motion, or does it draw the prediction? (see
:mod:`stae.diagnose` and docs/flow.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stae.commands import number
from stae.errors import StaeError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "diagnose", help="tell whether a model's flow is motion: EPE, flow length, samples off the map",
        description="Run CHECKPOINT (a .safetensors file, checkpoint or run directory, or shipped model) on the "
                    "first test sequences of Moving MNIST (frames 0..K-1 in, frame K scored) and print its "
                    "prediction error (BCE on binary frames, squared error on float frames), the same with the "
                    "sampler reading the border or zeros off the feature map and with zero flow, the median "
                    "flow length on digit pixels beside the true motion's, the end-point error and the share "
                    "of sampling points off the map. See docs/flow.md.")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", choices=("auto", "binary", "float"), default="auto",
                   help="binary frames (Table 2, BCE) or float frames (Table 3, squared error); "
                        "auto (default): binary for a model with a sigmoid output, float otherwise")
    p.add_argument("--sequences", type=number(1, 10**6, integer=True), default=64, metavar="N",
                   help="the first N sequences of the test split (default 64, at most 2000)")
    p.add_argument("--context", type=number(1, 1000, integer=True), default=10, metavar="K",
                   help="frames fed before the scored frame K (default 10, as Table 2)")
    p.add_argument("--batch-size", type=number(1, 65536, integer=True), default=64, help="sequences per batch (memory only; default 64)")
    p.add_argument("--out", "--json", dest="out", default=None, metavar="FILE.json",
                   help="also write the numbers to this JSON file (refused if it exists, unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stae.weights import atomic_write_bytes, load_model, resolve_checkpoint
    from stae.diagnose import FRAMES, TEST_SEQUENCES, diagnose

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.force:
        raise StaeError(f"--out {out}: already exists (use --force to overwrite)")
    if not 1 <= args.sequences <= TEST_SEQUENCES:
        raise StaeError(f"--sequences must be in 1..{TEST_SEQUENCES}, got {args.sequences}")
    if not 1 <= args.context <= FRAMES - 1:
        raise StaeError(f"--context must be in 1..{FRAMES - 1}, got {args.context}")
    if args.batch_size < 1:
        raise StaeError(f"--batch-size must be >= 1, got {args.batch_size}")
    model = load_model(args.checkpoint)
    binary = model.config.output == "sigmoid" if args.data == "auto" else args.data == "binary"
    res = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "data": "binary" if binary else "float",
           "context": args.context,
           **diagnose(model, args.sequences, args.context, binary=binary, batch_size=args.batch_size)}
    for k, v in res.items():
        print(f"{k:34s} {v:.4g}" if isinstance(v, float) else f"{k:34s} {v}")
    if out is not None:
        atomic_write_bytes(out, (json.dumps(res, indent=2) + "\n").encode())
        print(f"wrote {out}")
    return 0
