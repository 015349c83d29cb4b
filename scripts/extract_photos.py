"""Make the photographs shipped in ``src/stae/data/photos/`` from scikit-image's sample data.

    .venv/bin/pip install scikit-image        # only for this script; stae never imports it
    .venv/bin/python scripts/extract_photos.py [--out src/stae/data/photos]

Every image used is public domain or CC0 according to its ``skimage.data`` docstring (the
licence and source of each are listed in ``src/stae/data/photos/LICENSES.md``). Each is
cropped as listed below (to drop empty borders), resized with Pillow (antialiased) so that its
shorter side is 256 pixels, and saved as a JPEG (quality 90): grey images as one-channel
JPEGs, colour ones as RGB. The result is deterministic for a given scikit-image/Pillow.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 256  # shorter side of the shipped photographs, in pixels

# name in skimage.data -> (file name, crop (top, left, height, width) or None for the whole image)
PHOTOS = {
    "astronaut": ("astronaut.jpg", None),
    "brick": ("brick.jpg", None),
    "camera": ("camera.jpg", None),
    "chelsea": ("chelsea.jpg", None),
    "clock": ("clock.jpg", None),
    "coffee": ("coffee.jpg", None),
    "grass": ("grass.jpg", None),
    "gravel": ("gravel.jpg", None),
    "hubble_deep_field": ("hubble.jpg", (136, 200, 600, 600)),  # the centre, denser in galaxies
    "retina": ("retina.jpg", (255, 255, 900, 900)),  # the square inside the fundus circle
    "rocket": ("rocket.jpg", None),
}


def extract(name: str, crop, out: Path) -> Path:
    import skimage.data

    a = np.asarray(getattr(skimage.data, name)())
    if crop is not None:
        top, left, h, w = crop
        a = a[top:top + h, left:left + w]
    img = Image.fromarray(a)
    w, h = img.size
    scale = SIDE / min(w, h)
    img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    img.save(out, quality=90, optimize=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src" / "stae" / "data" / "photos")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (fname, crop) in PHOTOS.items():
        p = extract(name, crop, args.out / fname)
        with Image.open(p) as im:
            print(f"{p}: {im.mode} {im.size[0]}x{im.size[1]}, {p.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
