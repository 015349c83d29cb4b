"""A tiny folder of synthetic videos in HMDB-51's layout, for docs/own-videos.md.

    python scripts/make_toy_videos.py toy-videos

writes (grey .avi files, MPEG-4, 80x64, 40 frames at 25 fps; about 0.6 MB in all)::

    toy-videos/train/drift/drift_01.avi ... drift_04.avi    background pans, a disc bounces
    toy-videos/train/still/still_01.avi ... still_04.avi    background still, a disc bounces
    toy-videos/heldout/drift/drift_05.avi, heldout/still/still_05.avi
    toy-videos/masks/<video>/00000.png ...                  the disc of each held-out frame
                                                            (label 1, background 0)

Everything is made from a seed: smooth random textures (numpy FFT low-pass), integer motion
(the background 1 px per frame, the disc 2-3 px per frame, bouncing off the edges). The masks
are the true labels for ``stae propagate --labels ... --true-masks ...``. They live outside
``train/`` and ``heldout/`` because a folder of PNG files is itself a video to stae.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image

H, W, FRAMES, RADIUS = 64, 80, 40, 9


def texture(rng: np.random.Generator, h: int, w: int, cutoff: float) -> np.ndarray:
    """Smooth noise in [0, 1]: white noise low-passed in the Fourier domain."""
    spec = np.fft.fft2(rng.standard_normal((h, w)))
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    smooth = np.fft.ifft2(spec * np.exp(-(fx ** 2 + fy ** 2) / (2 * cutoff ** 2))).real
    return (smooth - smooth.min()) / (np.ptp(smooth) + 1e-12)


def render(rng: np.random.Generator, drift: bool) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 (T, H, W), disc masks uint8 (T, H, W)) of one video."""
    bg = 40 + 120 * texture(rng, H + FRAMES, W + FRAMES, 0.06)
    disc_tex = 170 + 80 * texture(rng, 2 * RADIUS + 1, 2 * RADIUS + 1, 0.2)
    yy, xx = np.mgrid[-RADIUS:RADIUS + 1, -RADIUS:RADIUS + 1]
    inside = xx ** 2 + yy ** 2 <= RADIUS ** 2
    y, x = rng.integers(RADIUS, H - RADIUS), rng.integers(RADIUS, W - RADIUS)
    vy, vx = rng.choice([-2, 2]), rng.choice([-3, 3])
    frames, masks = np.zeros((FRAMES, H, W), np.uint8), np.zeros((FRAMES, H, W), np.uint8)
    for t in range(FRAMES):
        off = t if drift else 0  # the camera pans right-to-left: content moves 1 px/frame
        img = bg[off // 2:off // 2 + H, off:off + W].copy()
        sl = (slice(y - RADIUS, y + RADIUS + 1), slice(x - RADIUS, x + RADIUS + 1))
        img[sl][inside] = disc_tex[inside]
        masks[t][sl][inside] = 1
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
        if not RADIUS <= y + vy < H - RADIUS:
            vy = -vy
        if not RADIUS <= x + vx < W - RADIUS:
            vx = -vx
        y, x = y + vy, x + vx
    return frames, masks


def write_avi(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.bit_rate = 2_000_000  # high enough for ~44 dB PSNR: no block artefacts to learn
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> int:
    ap = argparse.ArgumentParser(description="Write a tiny HMDB-51-style folder of synthetic videos.")
    ap.add_argument("out", type=Path, help="output folder (created)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    for cls in ("drift", "still"):
        for i in range(1, 6):
            frames, masks = render(rng, drift=cls == "drift")
            split = "heldout" if i == 5 else "train"
            write_avi(args.out / split / cls / f"{cls}_{i:02d}.avi", frames)
            if split == "heldout":
                mask_dir = args.out / "masks" / f"{cls}_{i:02d}"
                mask_dir.mkdir(parents=True, exist_ok=True)
                for t, m in enumerate(masks):
                    Image.fromarray(m).save(mask_dir / f"{t:05d}.png")
    n = len(list(args.out.rglob("*.avi")))
    print(f"wrote {n} videos of {FRAMES} frames ({W}x{H}) under {args.out}: train/ (8), heldout/ (2), masks/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
