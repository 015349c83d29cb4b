"""``stae evaluate``: a checkpoint and the two baselines on the same frames -> table + JSON
(see :mod:`stae.evaluate` and docs/training.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stae.errors import StaeError
from stae.commands import parse_size


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
    p.add_argument("--context", type=int, default=10, help="tau: context frames fed before predicting (default 10)")
    p.add_argument("--horizon", type=int, default=10, help="rollout: frames predicted (default 10)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N clips")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--binary", action="store_true", help="moving-mnist: binary frames (Table 2; reports BCE)")
    p.add_argument("--lines", action="store_true", help="moving-mnist: the variant with two lines (Sec. 4.1)")
    p.add_argument("--size", type=parse_size, default=None, metavar="HxW",
                   help="moving-mnist/videos: frame size, N or HxW (default: 64)")
    p.add_argument("--split", choices=("train", "val", "all"), default=None,
                   help="folder of videos: which videos (default val; a single video file: all)")
    p.add_argument("--no-dis", action="store_true", help="skip the OpenCV DIS baseline")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="auto (default, as train.device: CUDA > MPS > CPU), cpu, cuda or mps")
    p.add_argument("--out", default=None, help="JSON file (default: ./eval_<mode>.json)")
    p.set_defaults(func=run)


def build_eval_dataset(spec: str, need: int, binary: bool = False, lines: bool = False, size: tuple[int, int] | None = None,
                       split: str = "val", in_channels: int = 1):
    """The dataset named by ``--data``: 'moving-mnist', a clip file, or a video folder."""
    if spec == "textures":
        from stae.video_eval import texture_test_set
        return texture_test_set(1000, max(11, need), size=tuple(size or (64, 64)), channels=in_channels)
    if spec in ("moving-mnist", "moving_mnist", "mmnist"):
        from stae.data.moving_mnist import default_dataset
        return default_dataset("test", num_frames=max(20, need), binary=binary, lines=lines,
                               size=size or (64, 64), with_truth=True)
    path = Path(spec)
    if not path.exists():
        raise StaeError(f"--data {spec}: no such file or folder (or use --data moving-mnist)")
    if path.is_file() and path.suffix.lower() in (".npy", ".npz"):
        from stae.data.files import ClipFileDataset
        return ClipFileDataset(path)
    from stae.data.video import VideoClipDataset
    return VideoClipDataset(path, clip_len=need, size=size or (64, 64), grayscale=in_channels == 1, split=split)


def _video_paths(spec: str, split: str | None) -> list[Path] | None:
    """The videos ``--data`` names (a video file or a folder of them), or None for other data."""
    from stae.data.video import find_videos, split_videos

    path = Path(spec)
    if not path.exists() or (path.is_file() and path.suffix.lower() in (".npy", ".npz")):
        return None
    videos = find_videos(path)
    if path.is_file() or (split or "val") == "all":
        return videos
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
    from stae.weights import load_model, resolve_checkpoint
    from stae.evaluate import evaluate, format_table

    if args.context < 1 or args.horizon < 1 or (args.limit is not None and args.limit < 1) or args.batch_size < 1:
        raise StaeError("--context, --horizon, --limit and --batch-size must be >= 1")
    import torch
    if args.device == "auto":
        args.device = ("cuda" if torch.cuda.is_available() else
                       "mps" if torch.backends.mps.is_available() else "cpu")
    elif args.device == "cuda" and not torch.cuda.is_available() or (
            args.device == "mps" and not torch.backends.mps.is_available()):
        raise StaeError(f"--device {args.device}: not available on this machine")
    model = load_model(args.checkpoint, map_location=args.device)
    need = args.context + (1 if args.mode == "next" else args.horizon)
    videos = _video_paths(args.data, args.split)
    if videos is not None:
        report = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "data": args.data,
                  "model_config": model.config.to_dict(), **_run_videos(args, model, videos)}
        out = Path(args.out) if args.out else Path("eval_video.json")
        from stae.weights import atomic_write_bytes
        atomic_write_bytes(out, (json.dumps(report, indent=2) + "\n").encode())
        print(f"wrote {out}")
        return 0
    ds = build_eval_dataset(args.data, need, args.binary, args.lines, args.size, args.split or "val",
                            model.config.in_channels)
    report = evaluate(model, ds, context=args.context, mode=args.mode, horizon=args.horizon,
                      batch_size=args.batch_size, limit=args.limit,
                      baselines=("copy_last",) if args.no_dis else ("copy_last", "dis"),
                      binary=True if args.binary else None, device=args.device, progress=True)
    report = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "data": args.data,
              "model_config": model.config.to_dict(), **report}
    if args.data == "textures" and args.mode == "next":
        from stae.video_eval import flicker
        report["flicker"] = flicker(model, num=min(args.limit or 64, 64), context=args.context, dis=not args.no_dis)
    out = Path(args.out) if args.out else Path(f"eval_{args.mode}.json")
    from stae.weights import atomic_write_bytes
    atomic_write_bytes(out, (json.dumps(report, indent=2) + "\n").encode())
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
    print(f"wrote {out}")
    return 0
