"""Regenerate the documentation pictures that come from a trained model (``make docs-pictures``).

    docs/img/predict_figure.png      `stae predict` figure.png: test sequence 0, rows t = 9, 14, 18
    docs/img/propagate_compare.gif   `stae propagate` compare.gif: test sequence 0, truth | stae (observed mode) | DIS | copy first

Both come from the model shipped with the package (default ``vanilla-mmnist``, resolved by
name like ``stae predict vanilla-mmnist``) on the default generated Moving MNIST test split
(seed 2, the MNIST test digits embedded in stae), made by the package's own functions — the
same calls as the commands in docs/predict.md:

    stae data moving-mnist --split test --num 4 --binary --truth --out mm_test.npz
    stae predict vanilla-mmnist mm_test.npz --index 0 --steps 9,14,18 --scale 2 --out predict/
    stae propagate vanilla-mmnist mm_test.npz --index 0 --scale 2 --out propagate/

The frames are binary when the model has a sigmoid output (trained with BCE on binary frames,
Table 2), float otherwise. Everything runs offline on one CPU thread in a few seconds and
is deterministic (the same model gives byte-identical files). It prints the numbers that
docs/predict.md quotes: the prediction error, the flow colour scale and the mean IoU of each
propagation method over the first ``--iou-sequences`` test sequences. docs/img/
warp_check_synthetic.png does not come from a model and is not touched.

Outputs are made in a temporary folder and copied into ``--out`` (each file atomically) only
when all are complete, so a failure leaves the existing pictures as they were.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "vanilla-mmnist"
FIGURE_STEPS = (9, 14, 18)  # the rows of predict_figure.png, as in docs/predict.md
SCALE = 2  # 64x64 frames drawn at 128x128
# docs/img name <- (command output folder, file written by that command)
PICTURES = {
    "predict_figure.png": ("predict", "figure.png"),
    "propagate_compare.gif": ("propagate", "compare.gif"),
}


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"shipped model name or checkpoint path (default {DEFAULT_MODEL})")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="picture folder (default docs/img)")
    p.add_argument("--index", type=int, default=0, help="test sequence shown in the pictures (default 0)")
    p.add_argument("--iou-sequences", type=int, default=4,
                   help="report propagation IoU over test sequences 0..N-1 (default 4, the table in docs/predict.md)")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # One thread before torch starts its pool: deterministic and polite on a shared machine.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2
    import torch

    from stae.weights import atomic_write_bytes, load_model, resolve_checkpoint
    from stae.data.files import save_moving_mnist
    from stae.errors import StaeError
    from stae.predict import predict_video
    from stae.propagate import propagate_video

    args = parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # the DIS baseline of `propagate`
    try:
        if args.index < 0 or args.iou_sequences < 0:
            raise StaeError("--index and --iou-sequences must be >= 0")
        model = load_model(args.model)
        binary = model.config.output == "sigmoid"
        n = max(args.index + 1, args.iou_sequences)
        with tempfile.TemporaryDirectory(prefix="stae-docs-pictures-") as tmp:
            tmp = Path(tmp)
            clips = save_moving_mnist(tmp / "mm_test.npz", num_sequences=n, split="test", truth=True, binary=binary)
            s = predict_video(model, clips, tmp / "predict", index=args.index, steps=FIGURE_STEPS, scale=SCALE)
            iou = {}
            for i in sorted(set(range(args.iou_sequences)) | {args.index}):
                out = tmp / "propagate" if i == args.index else tmp / f"propagate-{i}"
                iou[i] = propagate_video(model, out, video=clips, index=i, scale=SCALE)["mean_iou"]
            args.out.mkdir(parents=True, exist_ok=True)
            for name, (folder, made) in PICTURES.items():
                atomic_write_bytes(args.out / name, (tmp / folder / made).read_bytes())
    except StaeError as e:
        print(f"docs_pictures: error: {e}", file=sys.stderr)
        return 2

    kind = "binary" if binary else "float"
    print(f"model {args.model} ({resolve_checkpoint(args.model)}); {kind} Moving MNIST test sequence {args.index}")
    print(f"predict: {s['frames']} frames, mean squared error {s['mean_l2_pred']:.4f} "
          f"(copying frame t: {s['mean_l2_copy_last']:.4f}); flow colour scale {s['max_flow_pixels']:.2f} px")
    print(f"propagate, mean IoU over frames 1..{s['frames'] - 1}:")
    print("| sequence | stae (observed mode) | DIS flow | copy first |")
    print("|---|---|---|---|")
    for i, m in iou.items():
        cells = ["n/a" if m[k] is None else f"{m[k]:.3f}" for k in ("observed", "dis", "copy_first")]
        print(f"| {i} | " + " | ".join(cells) + " |")
    for name in PICTURES:
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
