"""``stae data textures``: real textures in motion (with exact flow) into a .npz clip file.

Every value is parsed here, not by argparse, so that any bad option is one
``stae: error: --flag ...`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from stae.errors import StaeError


def _number(flag: str, text: str | None, kind=float):
    if text is None:
        return None
    try:
        x = kind(text)
    except ValueError:
        raise StaeError(f"{flag}: expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if not math.isfinite(x):
        raise StaeError(f"{flag}: expected a finite number, got {text!r}")
    return x


def _pair(flag: str, text: str | None, kind=float):
    """'2' -> 2; '1:3' -> (1, 3)."""
    if text is None:
        return None
    if ":" in text:
        lo, hi = text.split(":", 1)
        return _number(flag, lo, kind), _number(flag, hi, kind)
    return _number(flag, text, kind)


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) not in (1, 2):
        raise StaeError(f"--size: expected N or HxW, e.g. 64 or 48x64, got {text!r}")
    hw = tuple(_number("--size", p, int) for p in parts)
    return (hw[0], hw[0]) if len(hw) == 1 else hw  # type: ignore[return-value]


# flag -> (option name, parser); None values keep the generator's defaults
_OPTIONS = {
    "frames": ("num_frames", lambda t: _number("--frames", t, int)),
    "size": ("size", _size),
    "channels": ("channels", lambda t: _number("--channels", t, int)),
    "layers": ("layers", lambda t: _pair("--layers", t, int)),
    "layer_size": ("layer_size", lambda t: _pair("--layer-size", t)),
    "speed": ("speed", lambda t: _pair("--speed", t)),
    "pan": ("pan", lambda t: _pair("--pan", t)),
    "zoom": ("zoom", lambda t: _number("--zoom", t)),
    "rotation": ("rotation", lambda t: _number("--rotation", t)),
    "scale": ("scale", lambda t: _pair("--scale", t)),
    "brightness": ("brightness", lambda t: _number("--brightness", t)),
    "noise": ("noise", lambda t: _number("--noise", t)),
    "still": ("still", lambda t: _number("--still", t)),
    "still_layers": ("still_layers", lambda t: _number("--still-layers", t)),
}


def register(dsub: argparse._SubParsersAction) -> None:
    m = dsub.add_parser("textures", help="generate real textures in motion (exact flow) into a .npz file",
                        description="Photographs under camera motion with 1-3 moving foreground layers cut from "
                                    "other photographs; sequences 0..N-1 of a seed, identical to the on-the-fly "
                                    "dataset (data.source: textures). See docs/data.md.")
    m.add_argument("--out", metavar="FILE.npz", required=True, type=Path, help="output .npz file (refused if it exists, unless --force)")
    m.add_argument("--split", metavar="SPLIT", default="train",
                   help="train (training photographs) | val | test (test photographs); sets the default --num and --seed")
    m.add_argument("--num", metavar="N", default=None, help="number of sequences (default: 10000 train, 1000 val, 1000 test)")
    m.add_argument("--seed", metavar="S", default=None, help="seed (default: 0 train, 1 val, 2 test)")
    m.add_argument("--frames", metavar="T", default=None, help="frames per sequence (default 20)")
    m.add_argument("--size", metavar="N|HxW", default=None, help="frame size N or HxW (default 64)")
    m.add_argument("--channels", metavar="1|3", default=None, help="1 (grey, default) or 3 (colour)")
    m.add_argument("--layers", metavar="K|LO:HI", default=None, help="foreground layers K or LO:HI drawn per sequence (default 1:3)")
    m.add_argument("--layer-size", metavar="X|LO:HI", default=None, help="layer radius / shorter side, X or LO:HI (default 0.15:0.35)")
    m.add_argument("--speed", metavar="V|LO:HI", default=None, help="layer speed, px/frame, V or LO:HI (default 0.5:3)")
    m.add_argument("--pan", metavar="V|LO:HI", default=None, help="camera pan, px/frame, V or LO:HI (default 0:2)")
    m.add_argument("--zoom", metavar="Z", default=None, help="zoom rate per frame drawn in [-Z, Z] (default 0.01)")
    m.add_argument("--rotation", metavar="DEG", default=None, help="rotation, degrees/frame drawn in [-R, R] (default 1)")
    m.add_argument("--scale", metavar="S|LO:HI", default=None, help="photo px per canvas px, S or LO:HI (default 0.5:1.5)")
    m.add_argument("--brightness", metavar="B", default=None, help="brightness change rate per frame drawn in [-B, B] (default 0)")
    m.add_argument("--noise", metavar="SIGMA", default=None, help="std of additive Gaussian noise on [0, 1] frames (default 0)")
    m.add_argument("--still", metavar="P", default=None,
                   help="probability per sequence that the camera is still: no pan, zoom or rotation (default 0)")
    m.add_argument("--still-layers", metavar="P", default=None,
                   help="probability per foreground layer that it is still: no motion, spin or zoom (default 0)")
    m.add_argument("--photos-dir", metavar="DIR", type=Path, default=None,
                   help="folder of your own .png/.jpg photographs (every fifth held out for val/test)")
    m.add_argument("--truth", action="store_true", help="also store the owner map (masks, flow, occlusion follow)")
    m.add_argument("--compress", action="store_true", help="deflate the .npz (smaller, slower; not memory-mappable)")
    m.add_argument("--force", action="store_true", help="overwrite an existing output file")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=run_textures)


def run_textures(args: argparse.Namespace) -> int:
    from stae.data import textures as tx
    from stae.data.textures_file import save_textures

    if args.split not in tx.SPLITS:
        raise StaeError(f"--split: expected one of train, val, test, got {args.split!r}")
    n = _number("--num", args.num, int)
    n = tx.DEFAULT_SIZES[args.split] if n is None else n
    seed = _number("--seed", args.seed, int)
    seed = tx.DEFAULT_SEEDS[args.split] if seed is None else seed
    options = {name: parse(getattr(args, flag)) for flag, (name, parse) in _OPTIONS.items() if getattr(args, flag) is not None}
    try:
        o = tx.TextureOptions(**options).checked()
    except StaeError as e:  # the library names the parameter; say the flag
        raise StaeError(f"{_flag_of(str(e))}{e}") from None
    if n < 1:
        raise StaeError(f"--num: must be >= 1, got {n}")
    if args.photos_dir is not None:
        try:
            tx.photo_files(args.split, args.photos_dir)
        except StaeError as e:
            raise StaeError(f"--photos-dir: {e}") from None
    if args.out.exists() and not args.force:  # before the progress bar appears
        raise StaeError(f"{args.out}: already exists (use --force to overwrite)")
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=max(n, 0), unit="seq", desc=f"textures {args.split}", file=sys.stderr, leave=False)
    t0 = time.perf_counter()
    try:
        path = save_textures(args.out, n, seed, split=args.split, truth=args.truth, force=args.force, compress=args.compress,
                             photos=args.photos_dir, progress=bar.update if bar else None, **options)
    finally:
        if bar is not None:
            bar.close()
    (h, w), lo, hi = o.size, o.layers[0], o.layers[1]
    print(f"wrote {path}: {n} sequences x {o.num_frames} frames of {h}x{w}, {o.channels} channel(s), "
          f"{lo if lo == hi else f'{lo}-{hi}'} layer(s), seed {seed}, split {args.split}, "
          f"photos {'from ' + str(args.photos_dir) if args.photos_dir else 'shipped'}, truth {'yes' if args.truth else 'no'}; "
          f"{path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
    return 0


def _flag_of(message: str) -> str:
    """'layers must ...' -> '--layers: ' (the library's parameter names are the flags' names)."""
    name = message.split(" ", 1)[0]
    flags = {opt: flag for flag, (opt, _) in _OPTIONS.items()}
    return f"--{flags[name].replace('_', '-')}: " if name in flags else ""
