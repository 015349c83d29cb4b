"""``stae predict``: next-frame prediction and flow on a video with a trained model (see
docs/predict.md and :mod:`stae.predict`)."""

from __future__ import annotations

import argparse
import sys

from stae import machine
from stae.weights import load_model
from stae.commands import number, parse_size
from stae.predict import predict_video


def _int_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="predict the next frames and the flow of a video with a trained model",
        description=(
            "Stream INPUT frame by frame through the model (CHECKPOINT: a .safetensors file, checkpoint "
            "or run directory, or a shipped model name) and write to --out: predict.mp4 and predict.gif "
            "(panels: input t | true t+K | predicted t+K | flow colour, one flow scale for the whole video), "
            "figure.png (the layout of the paper's Figs. 5/7 for --steps), predict.json (squared errors of "
            "the prediction and of copying frame t) and, with --flo, flow/flow_NNNNN.flo: the FORWARD flow "
            "from frame N to N+1 at image resolution. Frames are centre-cropped to the model's stride "
            "(or cropped and resized to --size) and converted to the model's gray/RGB."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("input", metavar="INPUT", help="video file, folder of frames, or clip file (.npy/.npz)")
    p.add_argument("--out", default="predict", help="output directory (default: ./predict)")
    p.add_argument("--index", type=number(integer=True), default=None, help="clip files: which sequence (default 0)")
    p.add_argument("--size", type=parse_size, default=None, metavar="HxW",
                   help="crop to this aspect ratio and resize (default: centre crop to a multiple of the stride)")
    p.add_argument("--horizon", type=number(1, 1000, integer=True), default=1, metavar="K",
                   help="predict K frames ahead, feeding predictions back (default 1)")
    p.add_argument("--steps", type=_int_list, default=None, metavar="T,T,...",
                   help="time steps t shown in figure.png; negative counts from the end (default: 3 spread out)")
    p.add_argument("--context", type=number(1, 100, integer=True), default=None, metavar="k",
                   help="input frames shown per figure row (default 5, as Fig. 5; the paper's Fig. 7 uses 3)")
    p.add_argument("--max-flow", type=number(0, 10**6, above=True), default=None, metavar="PIXELS",
                   help="flow magnitude drawn at full colour, in image pixels (default: the video's largest)")
    p.add_argument("--flo", action="store_true", help="also write every frame's flow as a .flo file")
    p.add_argument("--fps", type=number(0, 1000, above=True), default=10.0, help="frame rate of the MP4/GIF (default 10)")
    p.add_argument("--scale", type=number(1, 64, integer=True), default=None, metavar="N", help="magnify panels N times (default: to >= 128 px)")
    p.add_argument("--max-frames", type=number(1, 10**7, integer=True), default=None, metavar="N", help="read at most N frames of INPUT")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs in --out")
    p.add_argument("--bf16", action="store_true",
                   help="stream under bfloat16 autocast: faster on CPUs with AVX512-BF16 or AMX, slower without; not exact (docs/performance.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.checkpoint)
    if args.bf16 and not machine.native_bf16():
        print("stae predict: note: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): "
              "--bf16 runs emulated, slower than float32", file=sys.stderr)
    s = predict_video(model, args.input, args.out, index=args.index, size=args.size, horizon=args.horizon,
                      steps=args.steps, context=args.context, max_flow=args.max_flow, flo=args.flo, fps=args.fps,
                      scale=args.scale, max_frames=args.max_frames, force=args.force,
                      bf16=args.bf16)
    print(f"{s['frames']} frames ({s['frame_fit']}), horizon {s['horizon']}: mean squared error "
          f"{s['mean_l2_pred']:.5f} (copying frame t: {s['mean_l2_copy_last']:.5f}); "
          f"flow colour scale {s['max_flow_pixels']:.2f} px")
    for path in s["written"]:
        print(f"wrote {path}")
    return 0
