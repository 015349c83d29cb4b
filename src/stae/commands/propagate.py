"""``stae propagate``: carry a label map from the first frame through a video along the
model's predicted flow (see docs/predict.md and :mod:`stae.propagate`)."""

from __future__ import annotations

import argparse

from stae.weights import load_model
from stae.errors import StaeError
from stae.commands import number, parse_size
from stae.propagate import MODES, PropagationOptions, propagate_video

_MM_DEFAULTS = {"split": "test", "num_frames": 20, "size": 64, "num_digits": 2, "binary": False, "lines": False}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "propagate",
        help="propagate first-frame labels through a video along the predicted flow",
        description=(
            "Carry an integer label map (PNG, any number of labels) from the first frame (or frame --start) of VIDEO through "
            "the video: labels_{t+1}(p) = labels_t(p + T_t(p)), T_t the model's backward flow at image "
            "resolution, predicted (--mode predictive) or refined on the observed frames (--mode observed); class "
            "probabilities are warped and renormalised, argmax for output. Writes labels/ (palette PNGs whose "
            "pixel values are the labels), overlays/, overlay.gif and propagate.json to --out. With ground "
            "truth (--true-masks, a clip file saved with truth, or --moving-mnist) it also reports the "
            "per-frame IoU of the model and of two baselines (copy the first mask; propagate along OpenCV "
            "DIS flow) and writes compare.gif."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("video", metavar="VIDEO", nargs="?", default=None,
                   help="video file, folder of frames, or clip file (.npy/.npz)")
    p.add_argument("--labels", metavar="MASK.png", default=None,
                   help="the labels of the first frame (or of frame --start): gray/palette/16-bit PNG of integers, 0 = background")
    p.add_argument("--true-masks", metavar="DIR", default=None,
                   help="folder of PNG label maps, one per frame in name order, for IoU")
    p.add_argument("--index", type=number(integer=True), default=None, help="clip files: which sequence (default 0)")
    p.add_argument("--start", type=number(0, 10**7, integer=True), default=0, metavar="K",
                   help="the labels are frame K's (default 0); frames 0..K-1 only fill the model's memory, so "
                        "its first flow is not a guess from one frame")
    p.add_argument("--mode", choices=MODES, default="observed",
                   help="observed (default): the model's flow refined on each observed pair of frames, as DIS sees "
                        "both; predictive: the flow the model predicts before it sees the frame it labels (the paper's)")
    p.add_argument("--hard", action="store_true",
                   help="carry hard labels (one-hot vote, argmax every step) instead of class probabilities")
    p.add_argument("--occlusion", action="store_true",
                   help="forward-backward occlusion check: pixels not visible in the previous frame take labels "
                        "from alike-looking neighbours (observed mode and DIS; docs/propagation.md)")
    p.add_argument("--moving-mnist", type=number(0, 10**8, integer=True), default=None, metavar="INDEX",
                   help="instead of VIDEO: generated Moving MNIST sequence INDEX, digit masks as labels and truth")
    g = p.add_argument_group("--moving-mnist options (match the data the model was trained on)")
    g.add_argument("--split", choices=("train", "val", "test"), default=None, help="default test")
    g.add_argument("--frames", type=number(2, 10_000, integer=True), default=None, dest="num_frames", metavar="N", help="frames per sequence (default 20)")
    g.add_argument("--image-size", type=number(1, 8192, integer=True), default=None, metavar="N", help="canvas side in pixels (default 64; "
                   "stae data moving-mnist calls it --size)")
    g.add_argument("--digits", type=number(1, 100, integer=True), default=None, dest="num_digits", metavar="N", help="digits per sequence (default 2)")
    g.add_argument("--binary", action="store_true", default=None, help="binarised frames")
    g.add_argument("--lines", action="store_true", default=None, help="add the paper's two static lines")
    p.add_argument("--size", type=parse_size, default=None, metavar="HxW",
                   help="crop to this aspect ratio and resize (default: centre crop to a multiple of the stride)")
    p.add_argument("--max-frames", type=number(1, 10**7, integer=True), default=None, metavar="N", help="use at most N frames")
    p.add_argument("--fps", type=number(0, 1000, above=True), default=5.0, help="GIF frame rate (default 5)")
    p.add_argument("--scale", type=number(1, 64, integer=True), default=None, metavar="N", help="magnify GIF panels N times (default: to >= 128 px)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs in --out")
    p.add_argument("--out", default="propagate", help="output directory (default: ./propagate)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    given = {"split": args.split, "num_frames": args.num_frames, "size": args.image_size,
             "num_digits": args.num_digits, "binary": args.binary, "lines": args.lines}
    mm_options = None
    if args.moving_mnist is not None:
        mm_options = {k: (_MM_DEFAULTS[k] if v is None else v) for k, v in given.items()}
    elif any(v is not None for v in given.values()):
        flags = {"size": "image-size", "num_frames": "frames", "num_digits": "digits"}
        key = next(k for k, v in given.items() if v is not None)
        raise StaeError(f"--{flags.get(key, key)} applies only with --moving-mnist")
    if args.occlusion and args.mode == "predictive":
        raise StaeError("--occlusion needs the forward flow of each observed pair: use it with --mode observed")
    model = load_model(args.checkpoint)
    s = propagate_video(model, args.out, video=args.video, labels=args.labels, index=args.index,
                        true_masks=args.true_masks, moving_mnist=args.moving_mnist, mm_options=mm_options,
                        size=args.size, max_frames=args.max_frames, fps=args.fps, scale=args.scale, force=args.force,
                        start=args.start, mode=args.mode,
                        options=PropagationOptions(soft=not args.hard, occlusion=args.occlusion))
    print(f"propagated labels {s['label_values']} through {s['frames']} frames ({s['frame_fit']})")
    if "mean_iou" in s:
        m = {k: ("n/a" if v is None else f"{v:.3f}") for k, v in s["mean_iou"].items()}
        print(f"mean IoU over frames {s['labelled_frame'] + 1}..{s['frames'] - 1}: stae ({args.mode}) {m[args.mode]}, "
              f"DIS flow {m['dis']}, copy first mask {m['copy_first']}")
    for path in s["written"]:
        print(f"wrote {path}")
    return 0
