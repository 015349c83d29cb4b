"""``stae evaluate``: a checkpoint and the two baselines on the same frames -> table + JSON
(see :mod:`stae.evaluate` and docs/training.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stae.errors import StaeError
from stae.commands import number, parse_size


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="metrics of a checkpoint and the copy-last / DIS baselines on a test set",
        description="Evaluate CHECKPOINT (a .safetensors file, checkpoint or run directory, or shipped model) "
                    "on a fixed test set: one-step prediction of frame tau+1 after tau context frames "
                    "(--mode next, the paper's protocol) or 10-in/10-out rollout (--mode rollout, OpenSTL's). "
                    "Prints a table and writes JSON. See docs/training.md.")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", default="moving-mnist",
                   help="moving-mnist (the generated test set: 2,000 sequences, seed 2, test digits, with true flow), "
                        "textures (the real-textures generator's test split, exact flow: EPE and flicker), "
                        "a clip file (.npy such as mnist_test_seq.npy, or .npz), or a video file or folder of videos "
                        "(per video: every window of context+1 frames, MSE/PSNR/SSIM vs copy-last and DIS)")
    p.add_argument("--mode", choices=("next", "rollout"), default="next")
    p.add_argument("--context", type=number(1, 1000, integer=True), default=10, help="tau: context frames fed before predicting (default 10)")
    p.add_argument("--horizon", type=number(1, 1000, integer=True), default=None,
                   help="--mode rollout only: frames predicted (default 10)")
    p.add_argument("--limit", type=number(1, 10**9, integer=True), default=None, help="evaluate only the first N clips")
    p.add_argument("--batch-size", type=number(1, 65536, integer=True), default=8)
    p.add_argument("--binary", action="store_true", help="moving-mnist: binary frames (Table 2; reports BCE)")
    p.add_argument("--lines", action="store_true", help="moving-mnist: the variant with two lines (Sec. 4.1)")
    p.add_argument("--size", type=parse_size, default=None, metavar="HxW",
                   help="moving-mnist/videos: frame size, N or HxW (default: 64)")
    p.add_argument("--split", choices=("train", "val", "all"), default=None,
                   help="a folder of videos: the training run's split (default val), or all of its videos (a "
                        "folder of held-out videos); one video or frame folder: all of it")
    p.add_argument("--no-dis", action="store_true", help="skip the OpenCV DIS baseline")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="auto (default, as train.device: CUDA > MPS > CPU), cpu, cuda or mps")
    p.add_argument("--out", default=None, help="JSON file (default: ./eval_<mode>.json); refused if it exists")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.set_defaults(func=run)


MOVING_MNIST = ("moving-mnist", "moving_mnist", "mmnist")


def check_options(args: argparse.Namespace) -> None:
    """Refuse options that the chosen --mode and --data would ignore, naming them."""
    if args.mode == "next" and args.horizon is not None:
        raise StaeError("--horizon applies to --mode rollout; --mode next predicts one frame")
    if args.data in MOVING_MNIST:
        kind, given = "--data moving-mnist", [("--split", args.split is not None)]
    else:
        clip_file = Path(args.data).suffix.lower() in (".npy", ".npz")
        kind = "a clip file" if clip_file else "videos"
        given = [("--binary", args.binary), ("--lines", args.lines)]
        given += [("--size", args.size is not None), ("--split", args.split is not None)] if clip_file else []
    for flag, on in given:
        if on:
            raise StaeError(f"{flag} does not apply to {kind} (--data {args.data})")


def build_eval_dataset(spec: str, need: int, binary: bool = False, lines: bool = False, size: tuple[int, int] | None = None,
                       split: str | None = None, in_channels: int = 1):
    """The dataset named by ``--data``: 'moving-mnist', a clip file, or videos (a folder of them,
    split ``split``, default 'val'; or one video file / frame folder, all of it by default)."""
    if spec == "textures":
        from stae.video_eval import texture_test_set
        return texture_test_set(1000, max(11, need), size=tuple(size or (64, 64)), channels=in_channels)
    if spec in MOVING_MNIST:
        from stae.data.moving_mnist import default_dataset
        return default_dataset("test", num_frames=max(20, need), binary=binary, lines=lines,
                               size=size or (64, 64), with_truth=True)
    path = Path(spec)
    if not path.exists():
        raise StaeError(f"--data {spec}: no such file or folder (or use --data moving-mnist)")
    if path.is_file() and path.suffix.lower() in (".npy", ".npz"):
        from stae.data.files import ClipFileDataset
        return ClipFileDataset(path)
    from stae.data.video import VideoClipDataset, find_videos
    if split is None:
        split = "all" if len(find_videos(path)) == 1 else "val"
    return VideoClipDataset(path, clip_len=need, size=size or (64, 64), grayscale=in_channels == 1, split=split)


def _video_paths(spec: str, split: str | None) -> list[Path] | None:
    """The videos ``--data`` names (a video file or a folder of them), or None for other data."""
    from stae.data.video import find_videos, split_videos

    path = Path(spec)
    if not path.exists() or (path.is_file() and path.suffix.lower() in (".npy", ".npz")):
        return None
    videos = find_videos(path)
    if path.is_file() or split == "all" or (split is None and len(videos) == 1):
        return videos  # one video (or frame folder) is scored whole unless a split is asked for
    return split_videos(videos, path, split or "val", 0.1, 0)


def _run_videos(args: argparse.Namespace, model, paths: list[Path]) -> dict:
    from stae.video_eval import evaluate_videos

    if args.mode != "next":
        raise StaeError("--mode rollout: a video file or folder is evaluated with --mode next (issue 13's protocol)")
    rep = evaluate_videos(model, paths, context=args.context, size=args.size or (64, 64),
                          baselines=("copy_last",) if args.no_dis else ("copy_last", "dis"),
                          batch_size=args.batch_size, device=args.device, limit=args.limit)
    for name, c in rep["clips"].items():
        methods = list(c["results"])
        print(f"{name}: {c['windows']} windows; {rep['protocol']['frames']}")
        print(f"{'metric':<12}" + "".join(f"{m:>12}" for m in methods))
        for k, label in (("l2", "mse"), ("psnr", "psnr ^"), ("ssim", "ssim ^")):
            print(f"{label:<12}" + "".join(f"{c['results'][m][k]:>12.5g}" for m in methods))
        print(f"{'mse / copy':<12}" + "".join(f"{c['mse_vs_copy'].get(m, float('nan')):>12.3f}" for m in methods))
    return rep


def run(args: argparse.Namespace) -> int:
    from stae.predict import OutputSet
    from stae.weights import load_model, resolve_checkpoint

    check_options(args)
    import torch
    if args.device == "auto":
        args.device = ("cuda" if torch.cuda.is_available() else
                       "mps" if torch.backends.mps.is_available() else "cpu")
    elif args.device == "cuda" and not torch.cuda.is_available() or (
            args.device == "mps" and not torch.backends.mps.is_available()):
        raise StaeError(f"--device {args.device}: not available on this machine")
    videos = _video_paths(args.data, args.split)
    out = Path(args.out) if args.out else Path("eval_video.json" if videos is not None else f"eval_{args.mode}.json")
    if out.is_dir():
        raise StaeError(f"--out {out}: is a directory, expected a JSON file name")
    outputs = OutputSet(out.parent, [out.name], args.force)  # refused (or unwritable) before any work
    model = load_model(args.checkpoint, map_location=args.device)
    from stae.machine import activation_bytes, require_memory
    h, w = args.size or (64, 64)
    require_memory(activation_bytes(model.config, args.batch_size, h, w, frames=2),
                   f"--batch-size {args.batch_size} of {w}x{h} frames")
    head = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "data": args.data,
            "model_config": model.config.to_dict()}
    report = {**head, **(_run_videos(args, model, videos) if videos is not None else _run_dataset(args, model))}
    with outputs:
        outputs.path(out.name).write_text(json.dumps(report, indent=2) + "\n")
        outputs.commit()
    print(f"wrote {out}")
    return 0


def _run_dataset(args: argparse.Namespace, model) -> dict:
    """Moving MNIST, the textures test split or a clip file: the metrics table (and flicker)."""
    from stae.evaluate import evaluate, format_table

    horizon = 10 if args.horizon is None else args.horizon
    need = args.context + (1 if args.mode == "next" else horizon)
    ds = build_eval_dataset(args.data, need, args.binary, args.lines, args.size, args.split, model.config.in_channels)
    report = evaluate(model, ds, context=args.context, mode=args.mode, horizon=horizon,
                      batch_size=args.batch_size, limit=args.limit,
                      baselines=("copy_last",) if args.no_dis else ("copy_last", "dis"),
                      binary=True if args.binary else None, device=args.device, progress=True)
    if args.data == "textures" and args.mode == "next":
        from stae.video_eval import flicker
        report["flicker"] = flicker(model, num=min(args.limit or 64, 64), context=args.context, dis=not args.no_dis)
    p = report["protocol"]
    print(f"{p['clips']} clips of {args.data}: {p['frames']}")
    print(format_table(report))
    if "flow_convention" in p:
        where = "every pixel" if args.data == "textures" else "digit pixels"
        print(f"epe: end-point error in pixels on {where}; flows {p['flow_convention'].split(',')[0]}")
    if "flicker" in report:
        f = report["flicker"]
        print(f"flicker on static pixels (still camera, {f['static_pixels']} pixels): model {f['model_flicker']:.4f} px, "
              f"mean |T| {f['model_magnitude']:.4f} px" + (f"; DIS {f['dis_flicker']:.4f} px, mean |T| "
                                                          f"{f['dis_magnitude']:.4f} px" if "dis_flicker" in f else ""))
    return report
