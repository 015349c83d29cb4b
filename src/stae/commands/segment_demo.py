"""``stae segment-demo``: weakly-supervised segmentation through label propagation, end to end
(:mod:`stae.segment`, docs/propagation.md#segmentation)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from stae.commands import number


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "segment-demo", help="weakly-supervised segmentation: labelled frames only vs + stae / + DIS propagated labels",
        description="With one labelled frame in every --every of each training sequence, train a small segmentation "
                    "network on (a) the labelled frames only, (b) those plus the labels stae propagates to the "
                    "frames between them (observed mode), (c) the same with OpenCV DIS flow; report each network's "
                    "IoU on unseen test sequences. Moving MNIST (classes: the digits' values) with vanilla-mmnist and "
                    "the real-textures generator (class: foreground layer) with video-gray64. Writes segment.json and "
                    "segment.png to --out. See docs/propagation.md.")
    p.add_argument("--data", choices=("moving_mnist", "textures", "both"), default="both")
    p.add_argument("--checkpoint", default=None, metavar="CHECKPOINT",
                   help="the stae model (default: vanilla-mmnist for Moving MNIST, video-gray64 for textures); "
                        "only with one --data")
    p.add_argument("--quick", action="store_true", help="a smoke run of seconds (4 + 4 sequences, 20 updates)")
    p.add_argument("--train-sequences", type=number(1, 10**5, integer=True), default=None, metavar="N",
                   help="training sequences (default 30)")
    p.add_argument("--test-sequences", type=number(1, 10**5, integer=True), default=None, metavar="N",
                   help="unseen test sequences scored (default 100)")
    p.add_argument("--every", type=number(1, 20, integer=True), default=None, metavar="N",
                   help="one labelled frame in every N (default 10)")
    p.add_argument("--steps", type=number(1, 10**7, integer=True), default=None, metavar="N",
                   help="updates of each segmentation network (default 600)")
    p.add_argument("--threads", type=number(1, 1024, integer=True), default=None, help="torch threads")
    p.add_argument("--force", action="store_true", help="overwrite segment.json / segment.png in --out")
    p.add_argument("--out", default="segment-demo", help="output directory (default ./segment-demo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from stae.errors import StaeError
    from stae.predict import OutputSet
    from stae.segment import MODELS, QUICK, DemoSize, SEGMENT_OUTPUTS, segment_demo, write_segment_outputs
    from stae.weights import load_model

    datasets = list(MODELS) if args.data == "both" else [args.data]
    if args.checkpoint is not None and len(datasets) > 1:
        raise StaeError("--checkpoint applies to one --data (moving_mnist or textures), not both")
    OutputSet(args.out, SEGMENT_OUTPUTS, args.force)  # refuses existing outputs before any work
    if args.threads:
        torch.set_num_threads(args.threads)
    size = QUICK if args.quick else DemoSize()
    given = {"train_sequences": args.train_sequences, "test_sequences": args.test_sequences, "every": args.every}
    size = replace(size, **{k: v for k, v in given.items() if v is not None})
    if args.steps is not None:
        size = replace(size, training=replace(size.training, steps=args.steps))
    results = []
    for data in datasets:
        model = load_model(args.checkpoint or MODELS[data]).eval()
        results.append(segment_demo(data, model, size, log=print))
    for r in results:
        print(f"{r['data']}: test IoU " + ", ".join(f"{v} {row['test_iou']:.3f}" for v, row in r["rows"].items()))
    models = {d: args.checkpoint or MODELS[d] for d in datasets}
    for path in write_segment_outputs(results, args.out, args.force, {"models": models}):
        print(f"wrote {path}")
    return 0
