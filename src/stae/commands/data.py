"""``stae data moving-mnist | inspect``: make Moving MNIST files, and check what a loader sees."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stae.commands import number, parse_size


def _speed(text: str) -> float | tuple[float, float]:
    """'0.1' -> 0.1 (fixed); '0.05:0.2' -> (0.05, 0.2) (uniform per digit)."""
    parse = number(0, 1)
    lo, _, hi = text.partition(":")
    return (parse(lo), parse(hi)) if hi else parse(lo)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="make Moving MNIST and texture files; inspect clip files and video folders",
                       description="Data tools. See docs/data.md.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True

    m = dsub.add_parser("moving-mnist", help="generate Moving MNIST sequences into a .npz file",
                        description="Generate sequences 0..N-1 of a seed (identical to the on-the-fly dataset) "
                                    "and save them as .npz: frames uint8 (N, T, H, W), positions, digit ids, "
                                    "lines, and with --truth the owner map from which masks and flow follow.")
    m.add_argument("--out", required=True, type=Path, help="output .npz file (refused if it exists, unless --force)")
    m.add_argument("--split", choices=("train", "val", "test"), default="train",
                   help="train uses training digits, val/test test digits; sets the default --num and --seed (default: train)")
    m.add_argument("--num", type=number(1, 10**8, integer=True), default=None, help="number of sequences (default: 10000 train, 3000 val, 2000 test)")
    m.add_argument("--seed", type=number(0, 2**32 - 1, integer=True), default=None, help="seed (default: 0 train, 1 val, 2 test)")
    m.add_argument("--digits", type=number(1, 100, integer=True), default=2, help="digits per sequence (default 2)")
    m.add_argument("--frames", type=number(1, 10_000, integer=True), default=20, help="frames per sequence (default 20)")
    m.add_argument("--size", type=parse_size, default=(64, 64), help="canvas N or HxW (default 64)")
    m.add_argument("--speed", type=_speed, default=0.1,
                   help="fraction of the free canvas per frame, or LO:HI drawn per digit (default 0.1 = 3.6 px at 64x64)")
    m.add_argument("--lines", action="store_true", help="add one horizontal and one vertical static line (paper Sec. 4.1)")
    m.add_argument("--binary", action="store_true", help="binary frames: pixel/255 >= --threshold becomes 255, else 0")
    m.add_argument("--threshold", type=number(0, 1, above=True), default=None,
                   help="--binary only: binarisation threshold on [0, 1] values (default 0.5)")
    m.add_argument("--truth", action="store_true", help="also store ground truth (owner map -> masks and flow)")
    m.add_argument("--mnist-dir", type=Path, default=None,
                   help="directory of MNIST IDX files (default: the 5,000 MNIST digits embedded in stae)")
    m.add_argument("--compress", action="store_true", help="deflate the .npz (smaller, slower; not memory-mappable)")
    m.add_argument("--force", action="store_true", help="overwrite an existing output file")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=run_moving_mnist)

    from stae.commands import data_textures

    data_textures.register(dsub)  # stae data textures

    i = dsub.add_parser("inspect", help="describe a clip file or a folder of videos as the loaders see it",
                        description="For a .npy/.npz clip file: the clip layout, dtype and stored metadata. For a "
                                    "video file, frame folder or directory: each video's frame count and the "
                                    "number of clips of --clip-len frames.")
    i.add_argument("path", type=Path)
    i.add_argument("--clip-len", type=number(1, 10_000, integer=True), default=None,
                   help="videos only: frames per clip (tau+1) (default 20)")
    i.add_argument("--stride", type=number(1, 1000, integer=True), default=None,
                   help="videos only: frame stride within a clip (default 1)")
    i.add_argument("--skip-bad", action="store_true", help="videos only: skip unreadable or too short videos with a warning")
    i.set_defaults(func=run_inspect)


def run_moving_mnist(args: argparse.Namespace) -> int:
    from stae.data.files import save_moving_mnist
    from stae.data.moving_mnist import DEFAULT_SEEDS, DEFAULT_SIZES

    from stae.errors import StaeError

    if args.threshold is not None and not args.binary:
        raise StaeError("--threshold applies only with --binary")
    threshold = 0.5 if args.threshold is None else args.threshold
    n = DEFAULT_SIZES[args.split] if args.num is None else args.num
    seed = DEFAULT_SEEDS[args.split] if args.seed is None else args.seed
    if args.out.exists() and not args.force:  # before the progress bar appears
        raise StaeError(f"{args.out}: already exists (use --force to overwrite)")
    bar = None

    def progress(k: int) -> None:  # the bar appears with the first chunk, after every check passed
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=n, unit="seq", desc=f"moving-mnist {args.split}", file=sys.stderr, leave=False)
        bar.update(k)

    t0 = time.perf_counter()
    try:
        path = save_moving_mnist(args.out, n, seed, split=args.split, truth=args.truth, force=args.force,
                                 compress=args.compress, digit_source=args.mnist_dir,
                                 progress=None if args.quiet else progress,
                                 num_digits=args.digits, num_frames=args.frames, size=args.size, speed=args.speed,
                                 lines=args.lines, binary=args.binary, threshold=threshold)
    finally:
        if bar is not None:
            bar.close()
    dt = time.perf_counter() - t0
    h, w = args.size
    mb = path.stat().st_size / 1e6
    print(f"wrote {path}: {n} sequences x {args.frames} frames of {h}x{w} (uint8{', binary' if args.binary else ''}"
          f"{', lines' if args.lines else ''}), seed {seed}, split {args.split}, "
          f"digits {'from ' + str(args.mnist_dir) if args.mnist_dir else 'embedded (5,000 MNIST)'}, "
          f"truth {'yes' if args.truth else 'no'}; {mb:.1f} MB in {dt:.1f} s")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from stae.errors import StaeError

    path: Path = args.path
    if not path.exists():
        raise StaeError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix.lower() in (".npy", ".npz"):
        from stae.data.files import ClipFileDataset, read_meta

        for flag, v in (("--clip-len", args.clip_len), ("--stride", args.stride), ("--skip-bad", args.skip_bad)):
            if v:
                raise StaeError(f"{flag} applies to videos, not to the clip file {path}")

        ds = ClipFileDataset(path)
        n, t, c, h, w = ds.clips.shape
        print(f"{path}: {n} clips x {t} frames x {c} channel(s) of {h}x{w}, {ds.clips.dtype}"
              f"{', with truth (masks, flow)' if ds.with_truth else ''}")
        meta = read_meta(path)
        if meta:
            print("  " + ", ".join(f"{k}={v}" for k, v in meta.items() if k not in ("format", "version")))
        return 0
    import warnings

    from stae.data.video import VideoClipDataset

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(f"stae: warning: {msg}", file=sys.stderr)
        args.clip_len, args.stride = args.clip_len or 20, args.stride or 1
        ds = VideoClipDataset(path, clip_len=args.clip_len, stride=args.stride, size=None, split="all",
                              skip_bad=args.skip_bad)
    per_video: dict[int, int] = {}
    for vi, _ in ds.clips:
        per_video[vi] = per_video.get(vi, 0) + 1
    for vi, info in enumerate(ds.videos):
        print(f"{info.path}: {info.num_frames} frames, {per_video.get(vi, 0)} clips")
    total = sum(v.num_frames for v in ds.videos)
    print(f"{len(ds.videos)} videos, {total} frames, {len(ds)} clips of {args.clip_len} frames (stride {args.stride})"
          f"{f', {len(ds.skipped)} skipped' if ds.skipped else ''}")
    return 0
