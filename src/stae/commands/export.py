"""``stae export``: the streaming step as TorchScript or ONNX, with explicit state tensors
(see docs/predict.md and :mod:`stae.export`)."""

from __future__ import annotations

import argparse

from stae.weights import load_model
from stae.export import FORMATS, default_size, export_model, io_names, state_shapes
from stae.commands import number, parse_size


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export the streaming step (frame, state -> prediction, flow, state) to TorchScript or ONNX",
        description=(
            "Write the model's per-frame step as a TorchScript or ONNX file: forward(frame, h0.., c0..) -> "
            "(pred, flow, h0_out.., c0_out..), with the memory state as explicit tensors (zeros for the "
            "first frame). flow is the BACKWARD flow on the feature grid. Traced for one frame size "
            "(--size) and batch (--batch)."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--format", choices=FORMATS, required=True, dest="fmt")
    p.add_argument("--out", required=True, metavar="FILE", help="output file (e.g. model.pt or model.onnx)")
    p.add_argument("--size", type=parse_size, default=None, metavar="HxW",
                   help="frame size to export for (default: 64x64, or the fc model's fixed size)")
    p.add_argument("--batch", type=number(1, 65536, integer=True), default=1, help="batch size to export for (default 1)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.checkpoint)
    path = export_model(model, args.out, args.fmt, size=args.size, batch=args.batch, force=args.force)
    ins, outs = io_names(model)
    h, w = args.size or default_size(model)
    shapes = state_shapes(model, args.batch, h, w)
    print(f"wrote {path} ({args.fmt}): inputs frame {[args.batch, model.config.in_channels, h, w]}"
          + "".join(f", {n} {list(s)}" for n, s in zip(ins[1:], shapes))
          + f"; outputs {', '.join(outs)}; state starts at zeros")
    return 0
