"""Optical-flow files and pictures: Middlebury ``.flo`` read/write and the Baker et al. colour code.

Layout and convention (one rule for this module):

* A flow held as a **numpy array is (H, W, 2)** — the layout of ``.flo`` files, OpenCV and
  RAFT — with ``[..., 0] = u`` (x, width) and ``[..., 1] = v`` (y, height), in pixels.
  A **torch tensor is (2, H, W)** (or a batch of one, (1, 2, H, W)) — the package's layout
  (``stae.model.warp``). Every function here accepts either and says which it returns.
* ``.flo`` files and :func:`flow_to_color` speak **forward** flow (where a pixel of frame t
  goes in frame t+1), the field's convention. The model's flow ``T`` is *backward*
  (``out(p) = in(p + T(p))``, eq. 4); pass ``convention="backward"`` and
  :func:`flow_to_color` converts it with :func:`stae.model.warp.backward_to_forward` — the one
  place in the package's pictures where that conversion happens.
* Unknown flow is NaN in memory, ``1e10`` in a file (Middlebury: ``|value| > 1e9`` is unknown),
  and black in a picture (as in the Middlebury ``color_flow`` tool).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from stae.errors import StaeError
from stae.model.warp import backward_to_forward

__all__ = [
    "FLO_MAGIC",
    "UNKNOWN_FLOW",
    "UNKNOWN_FLOW_THRESH",
    "add_legend",
    "as_hw2",
    "color_wheel_legend",
    "flow_to_color",
    "make_colorwheel",
    "read_flo",
    "write_flo",
]

FLO_MAGIC = 202021.25  # float32 whose little-endian bytes spell "PIEH"
UNKNOWN_FLOW_THRESH = 1e9  # Middlebury: |u| or |v| above this means "unknown"
UNKNOWN_FLOW = 1e10  # what write_flo stores for NaN
# Largest side accepted when reading: Sintel is 1024x436, Middlebury 640x480, 8K video is
# 7680x4320. A header beyond this is a corrupt file, not a flow field.
_MAX_FLO_SIDE = 100_000


# --------------------------------------------------------------------------------------
# Layout helpers


def as_hw2(flow: np.ndarray | torch.Tensor) -> np.ndarray:
    """Any accepted flow layout -> float32 numpy (H, W, 2), channel 0 = u (x), 1 = v (y).

    numpy arrays must be (H, W, 2); torch tensors (2, H, W) or (1, 2, H, W).
    """
    if isinstance(flow, torch.Tensor):
        t = flow.detach()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 2:
            raise ValueError(f"a flow tensor must be (2, H, W) or (1, 2, H, W); got {tuple(flow.shape)}")
        return t.to("cpu", torch.float32).permute(1, 2, 0).numpy()
    a = np.asarray(flow)
    if a.ndim != 3 or a.shape[-1] != 2:
        raise ValueError(
            f"a flow array must be (H, W, 2) (numpy; torch tensors are (2, H, W)); got {a.shape}"
        )
    return a.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------
# Colour code (Baker, Scharstein, Lewis, Roth, Black & Szeliski, IJCV 2011 / ICCV 2007)


def make_colorwheel() -> np.ndarray:
    """The Middlebury colour wheel: (55, 3) uint8 RGB, hue bins RY=15, YG=6, GC=4, CB=11, BM=13, MR=6.

    Bin 0 is pure red (255, 0, 0); the ramps use integer (floored) steps exactly as the
    reference C code ``colorcode.cpp`` (``setcols(255, 255*i/RY, 0, k++)`` ...).
    """
    ry, yg, gc, cb, bm, mr = 15, 6, 4, 11, 13, 6
    wheel = np.zeros((ry + yg + gc + cb + bm + mr, 3), dtype=np.int64)
    k = 0

    def ramp(n: int) -> np.ndarray:
        return (255 * np.arange(n)) // n

    wheel[k : k + ry, 0] = 255
    wheel[k : k + ry, 1] = ramp(ry)
    k += ry
    wheel[k : k + yg, 0] = 255 - ramp(yg)
    wheel[k : k + yg, 1] = 255
    k += yg
    wheel[k : k + gc, 1] = 255
    wheel[k : k + gc, 2] = ramp(gc)
    k += gc
    wheel[k : k + cb, 1] = 255 - ramp(cb)
    wheel[k : k + cb, 2] = 255
    k += cb
    wheel[k : k + bm, 2] = 255
    wheel[k : k + bm, 0] = ramp(bm)
    k += bm
    wheel[k : k + mr, 2] = 255 - ramp(mr)
    wheel[k : k + mr, 0] = 255
    return wheel.astype(np.uint8)


_WHEEL = make_colorwheel().astype(np.float64) / 255.0  # (55, 3) in [0, 1]


def _uv_to_color(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Normalised (u, v) (radius 1 = full saturation) -> (H, W, 3) uint8; NaN -> black.

    Vectorised transcription of ``computeColor`` in Middlebury's ``colorcode.cpp``:
    hue from ``atan2(-v, -u)`` interpolated between the two nearest wheel bins; inside the
    unit circle the colour fades to white towards the centre (``1 - r (1 - col)``); outside
    it is the full colour darkened by 0.75 ("out of range").
    """
    unknown = ~(np.isfinite(u) & np.isfinite(v))
    # "+ 0.0" turns -0.0 into +0.0: atan2 sees the sign of zero, and a flow of (1, -0.0)
    # (e.g. the negation of a backward flow) must get the same red as (1, 0).
    u = np.where(unknown, 0.0, u).astype(np.float64) + 0.0
    v = np.where(unknown, 0.0, v).astype(np.float64) + 0.0
    ncols = _WHEEL.shape[0]
    rad = np.sqrt(u * u + v * v)
    a = np.arctan2(-v, -u) / np.pi  # in [-1, 1]; +x flow -> atan2(-0, -1) = -pi -> bin 0 (red)
    fk = (a + 1.0) / 2.0 * (ncols - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = (k0 + 1) % ncols
    f = (fk - k0)[..., None]
    col = (1.0 - f) * _WHEEL[k0] + f * _WHEEL[k1]  # (H, W, 3)
    r = rad[..., None]
    col = np.where(r <= 1.0, 1.0 - r * (1.0 - col), col * 0.75)
    img = np.floor(255.0 * col).astype(np.uint8)
    img[unknown] = 0
    return img


def flow_to_color(
    flow: np.ndarray | torch.Tensor,
    max_radius: float | None = None,
    convention: str = "forward",
) -> np.ndarray:
    """Colour-code a flow field with the Middlebury wheel -> uint8 (H, W, 3) RGB.

    Args:
        flow: numpy (H, W, 2) or torch (2, H, W) / (1, 2, H, W), pixels, x first.
        max_radius: the flow magnitude (pixels) drawn at full saturation. ``None``: this
            frame's own largest known magnitude (Middlebury's default). Fix it to give all
            frames of a video one scale (no flicker); larger magnitudes are drawn darkened
            (x0.75) as in the reference code.
        convention: ``"forward"`` (where a pixel of frame t goes: .flo, OpenCV, RAFT) or
            ``"backward"`` (the model's T, out(p) = in(p + T(p))), converted here with
            :func:`stae.model.warp.backward_to_forward` so the picture always shows forward
            motion: +x (rightward) motion is red, zero motion white, unknown (NaN) black.
    """
    if convention not in ("forward", "backward"):
        raise ValueError(f"convention must be 'forward' or 'backward', got {convention!r}")
    if convention == "backward":
        flow = backward_to_forward(torch.from_numpy(as_hw2(flow)).permute(2, 0, 1))
    uv = as_hw2(flow)
    u, v = uv[..., 0], uv[..., 1]
    if max_radius is None:
        rad = np.sqrt(u.astype(np.float64) ** 2 + v.astype(np.float64) ** 2)
        known = np.isfinite(rad)
        max_radius = float(rad[known].max()) if known.any() else 0.0
    elif not (max_radius > 0 and np.isfinite(max_radius)):
        raise ValueError(f"max_radius must be a positive finite number, got {max_radius}")
    if max_radius == 0.0:  # all-zero (or all-unknown) flow: white (black where unknown)
        max_radius = 1.0
    return _uv_to_color(u / max_radius, v / max_radius)


def color_wheel_legend(size: int, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """The colour key as a (size, size, 3) uint8 image: the pixel at offset (dx, dy) from the
    centre shows the colour of forward flow (dx, dy) / radius; outside the disc: ``background``.

    This is the inset of the paper's Fig. 3 (top-right): white centre, red to the right,
    saturation growing with magnitude up to the rim (= ``max_radius`` of the picture).
    """
    if size < 3:
        raise ValueError(f"legend size must be >= 3 pixels, got {size}")
    c = (size - 1) / 2.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = (xs - c) / c, (ys - c) / c
    img = _uv_to_color(u, v)
    img[np.sqrt(u * u + v * v) > 1.0] = background
    return img


def add_legend(
    img: np.ndarray,
    size: int | None = None,
    corner: str = "top-right",
    margin: int = 2,
) -> np.ndarray:
    """Return a copy of ``img`` (H, W, 3) uint8 with the colour-wheel key inset in a corner.

    ``size`` defaults to a quarter of the shorter side (at least 9 pixels); the key gets a
    1-pixel dark-grey frame so it stands out on a white (zero-flow) background.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"add_legend expects a uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if size is None:
        size = max(9, min(h, w) // 4)
    box = size + 2  # with the frame
    if box + margin > h or box + margin > w:
        raise ValueError(f"legend of {size} pixels does not fit in a {h}x{w} image")
    corners = {
        "top-right": (margin, w - margin - box),
        "top-left": (margin, margin),
        "bottom-right": (h - margin - box, w - margin - box),
        "bottom-left": (h - margin - box, margin),
    }
    if corner not in corners:
        raise ValueError(f"corner must be one of {sorted(corners)}, got {corner!r}")
    y0, x0 = corners[corner]
    out = img.copy()
    out[y0 : y0 + box, x0 : x0 + box] = 64
    out[y0 + 1 : y0 + 1 + size, x0 + 1 : x0 + 1 + size] = color_wheel_legend(size)
    return out


# --------------------------------------------------------------------------------------
# Middlebury .flo files


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file -> float32 numpy (H, W, 2), u then v; unknown -> NaN.

    Format: float32 202021.25 ("PIEH"), int32 width, int32 height, then width*height*2
    little-endian float32 (u, v) interleaved, row by row. A wrong magic number, a header with
    absurd sizes, or a file whose length does not match its header raises StaeError.
    """
    p = Path(path)
    data = p.read_bytes()  # FileNotFoundError etc. are reported by the CLI as they are
    if len(data) < 12:
        raise StaeError(f"{p}: not a .flo file: {len(data)} bytes, shorter than the 12-byte header")
    magic = np.frombuffer(data, dtype="<f4", count=1)[0]
    if magic != np.float32(FLO_MAGIC):
        raise StaeError(f"{p}: not a .flo file: magic bytes {data[:4]!r}, expected b'PIEH' (202021.25)")
    w, h = (int(x) for x in np.frombuffer(data, dtype="<i4", count=2, offset=4))
    if not (0 < w <= _MAX_FLO_SIDE and 0 < h <= _MAX_FLO_SIDE):
        raise StaeError(f"{p}: corrupt .flo header: width {w}, height {h} (each must be 1..{_MAX_FLO_SIDE})")
    expected = 12 + 8 * w * h
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise StaeError(
            f"{p}: .flo file {what}: header says {w}x{h} ({expected} bytes), file has {len(data)} bytes"
        )
    flow = np.frombuffer(data, dtype="<f4", offset=12).reshape(h, w, 2).astype(np.float32)
    flow[~(np.abs(flow) <= UNKNOWN_FLOW_THRESH)] = np.nan  # also turns stored NaN/inf into NaN
    return flow


def write_flo(path: str | os.PathLike, flow: np.ndarray | torch.Tensor) -> None:
    """Write a flow (numpy (H, W, 2) or torch (2, H, W)) as a Middlebury ``.flo`` file.

    Non-finite values (NaN, inf: unknown flow) are stored as 1e10. The file is written to a
    temporary name and renamed, so a failure never leaves a half-written file in place.
    """
    uv = as_hw2(flow)
    h, w = uv.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"cannot write an empty flow of shape {uv.shape}")
    body = np.where(np.isfinite(uv), uv, np.float32(UNKNOWN_FLOW)).astype("<f4")
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(np.array([FLO_MAGIC], dtype="<f4").tobytes())
        f.write(np.array([w, h], dtype="<i4").tobytes())
        f.write(body.tobytes())
    os.replace(tmp, p)
