"""Real textures in motion: photographs under camera motion with moving foreground layers cut
from other photographs, with exact ground truth (the idea of FlyingChairs, Dosovitskiy et al.
2015: objects pasted on photographs under affine motions). See docs/data.md.

**What a sequence is.** ``T`` frames of ``H x W`` (default 20 x 64 x 64), grey (C=1) or
colour (C=3), made of ``L = 1 + max_layers`` *layers*, each a photograph seen through its own
affine map per frame, back to front:

* layer 0, the **background**: a photograph under camera motion — pan (``pan`` canvas px per
  frame, any direction), zoom (rate ``z`` per frame drawn in [-zoom, zoom], scale ``(1+z)^t``)
  and rotation (``w`` degrees per frame drawn in [-rotation, rotation]), starting within
  ±10 degrees of upright. It covers the whole frame. With probability ``still`` per sequence
  the camera is **still**: no pan, zoom or rotation (the tilt stays), so the background's
  true flow is exactly zero.
* layers 1..n, **foreground layers** (``n`` drawn per sequence in ``layers=(lo, hi)``), each
  cut from another photograph (all layers of a sequence use different photographs when the
  pool has enough) by a random **hard-edged** shape: an ellipse, a smooth blob (an ellipse
  whose radius is modulated by harmonics 2-4) or an affinely stretched regular polygon (3-6
  sides). Its radius is ``layer_size`` times the shorter canvas side, its aspect ratio in
  [0.5, 1]. It moves at ``speed`` px per frame in a uniform direction, its centre bouncing off
  the canvas edges (so it may leave the frame partly, never wholly), while it spins
  (``rotation``) and grows or shrinks (``zoom``) at its own drawn rates. Higher layers occlude
  lower ones (a fixed depth order per sequence). With probability ``still_layers`` per layer a
  layer is **still** (no motion, spin or zoom): with a still camera too, a scene where nothing
  moves, whose right prediction is the last frame.
* **Texture scale**: each layer draws ``scale`` = photo pixels (of the 256-px photographs) per
  canvas pixel. The photo is sampled from a pyramid level (2x, 4x smaller, antialiased) chosen
  so that one canvas pixel covers at most one photo pixel of that level (no aliasing) when
  the view fits there; otherwise the next finer level, and as a last resort a smaller scale.
  The background's pan speed is reduced if its path would leave the photograph, so no pixel
  ever samples outside a photograph.
* **Rendering**: every pixel takes the value of its topmost layer, sampled *bilinearly* from
  that layer's photograph at the exact affine image of the pixel centre (so a warp by the
  true flow reproduces the next frame up to interpolation); then an optional global
  brightness change ``exp(g t)`` with ``g`` drawn in [-brightness, brightness], optional
  additive Gaussian noise of std ``noise``; clipped to [0, 1] and rounded to uint8, like
  8-bit video.

**Ground truth** (``with_truth=True``):

* ``owner`` uint8 (T, H, W): the layer index of each pixel (0 = background); ``masks`` bool
  (T, L, H, W) = ``owner == l``: they **partition the frame**. Slots of absent layers (fewer
  than ``max_layers`` drawn) are all False.
* ``flow`` float32 (T-1, 2, H, W): the model's **backward** flow in pixels (channel 0 = x),
  ``flow[t]`` on the pixels of frame t+1: where frame t+1's pixel p shows layer l,
  ``flow[t](p) = G[t,l]^-1(G[t+1,l](p)) - p`` with ``G[t,l]`` the layer's canvas -> object
  affine map (``to_object``), i.e. where the same point of the layer was in frame t. So
  ``frame[t+1](p) ~ frame[t](p + flow[t](p))`` = :func:`stae.model.warp.warp` (align_corners,
  pixel units). Exact, affine, also where the source is outside the frame or hidden.
* ``occlusion`` bool (T-1, H, W), on frame t+1: True where p's source ``p + flow[t](p)`` lies
  outside frame t, or where any of the (up to four) pixels of frame t that bilinear
  interpolation at the source reads with a weight above 1e-4 belongs to another layer (the
  point was hidden behind, or is next to, another layer: revealed background, a layer edge,
  content entering the frame). On the other pixels the warp reproduces frame t+1 up to
  interpolation (and 8-bit quantisation) error: the frames are the photographs sampled at
  pixel centres, and the warp interpolates those samples instead of the photograph.

**Determinism.** Sequence ``i`` of seed ``s`` draws from ``numpy.random.default_rng([s, i])``
alone, in a fixed order for given ``layers`` and photo pool: the layer count
(``integers(lo, hi + 1)``), the photo order (``permutation(P)``), then ``random((L, 16))``
(each layer's shape, motion and texture placement) and ``random((L, 6))`` (blob harmonics);
the noise comes from ``default_rng([s, i, 1])``; whether each layer slot is still from
``default_rng([s, i, 2]).random(L)`` (slot 0, the camera, is still where its uniform is below
``still``, slot l >= 1 below ``still_layers``). So a sequence is the same alone, in a batch,
in a DataLoader worker or read back from a file; switching noise or brightness on changes
nothing else, and with ``still = still_layers = 0`` (the defaults) the sequences are those of
the generator before the two options existed.

**Photographs.** ``photos=None`` uses the 11 public-domain/CC0 photographs shipped in
``stae/data/photos`` (from scikit-image's sample data; see LICENSES.md there), split into 7
training and 4 test photographs (:data:`PHOTO_SPLIT`): split 'train' uses the training
photographs, 'val' and 'test' the test photographs. ``photos=<folder>`` uses the
.png/.jpg/.jpeg files in it (sorted), every fifth (positions 4, 9, ...; the last one when
fewer than five) held out for 'val'/'test'; a list of files is used as given for any split.
Photographs are resized so that the shorter side is 256 pixels.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from stae.data.video import IMAGE_SUFFIXES
from stae.errors import StaeError

PHOTO_DIR = Path(__file__).parent / "photos"
# Disjoint pools: no test photograph is ever seen in training (file stems in PHOTO_DIR).
PHOTO_SPLIT = {
    "train": ("astronaut", "brick", "clock", "coffee", "grass", "hubble", "rocket"),
    "test": ("camera", "chelsea", "gravel", "retina"),
}
SPLITS = {"train": "train", "val": "test", "test": "test"}  # sequence split -> photo pool
DEFAULT_SIZES = {"train": 10_000, "val": 1_000, "test": 1_000}
DEFAULT_SEEDS = {"train": 0, "val": 1, "test": 2}
PHOTO_SIDE = 256  # shorter side of every photograph at pyramid level 0, in pixels
LEVELS = 3  # pyramid levels: 256, 128, 64 px (shorter side)

_DRAWS = 16  # uniforms per layer slot (the documented draw order)
# Sub-pixel offsets below this count as on the pixel in the occlusion test (float32 source
# positions; a bilinear tap of weight < 1e-4 changes a [0, 1] value by < 1e-4).
_EPS = 1e-4


# ---------------------------------------------------------------------------------------------
# Options


def _range(name: str, value, low: float = 0.0, integer: bool = False) -> tuple[float, float]:
    """A number or a (lo, hi) pair -> (lo, hi) with low <= lo <= hi, else StaeError naming it."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        lo = hi = value
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = value
    else:
        raise StaeError(f"{name} must be a number or a (lo, hi) pair, got {value!r}")
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise StaeError(f"{name} must be a number or a (lo, hi) pair, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and low <= lo <= hi):
        raise StaeError(f"{name} must satisfy {low:g} <= lo <= hi (finite), got {value!r}")
    if integer and not (lo.is_integer() and hi.is_integer()):
        raise StaeError(f"{name} must be whole numbers, got {value!r}")
    return lo, hi


def _probability(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise StaeError(f"{name} must be a probability in [0, 1], got {value!r}") from None
    if isinstance(value, bool) or not 0.0 <= v <= 1.0:  # NaN fails too
        raise StaeError(f"{name} must be a probability in [0, 1], got {value!r}")
    return v


def _nonneg(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise StaeError(f"{name} must be a number >= 0, got {value!r}") from None
    if isinstance(value, bool) or not (math.isfinite(v) and v >= 0):
        raise StaeError(f"{name} must be a number >= 0, got {value!r}")
    return v


@dataclass(frozen=True)
class TextureOptions:
    """What the generator draws; ranges are (lo, hi), drawn uniformly per sequence or layer."""

    num_frames: int = 20
    size: Any = 64  # N or (H, W)
    channels: int = 1  # 1 (grey, luma of colour photos) or 3 (RGB; grey photos replicated)
    layers: Any = (1, 3)  # foreground layers per sequence (inclusive range; 0 = background only)
    layer_size: Any = (0.15, 0.35)  # layer radius / shorter canvas side
    speed: Any = (0.5, 3.0)  # foreground speed, canvas px per frame
    pan: Any = (0.0, 2.0)  # camera pan speed, canvas px per frame
    zoom: float = 0.01  # zoom rate per frame drawn in [-zoom, zoom] (camera and each layer)
    rotation: float = 1.0  # degrees per frame drawn in [-rotation, rotation] (camera and each layer)
    scale: Any = (0.5, 1.5)  # photo px (256-px photos) per canvas px, per layer
    brightness: float = 0.0  # brightness change rate per frame drawn in [-b, b]: frame t x exp(g t)
    noise: float = 0.0  # std of additive Gaussian noise on [0, 1] frames
    # Still scenes (the right flow is zero): the probability per sequence that the camera does
    # not move (no pan, zoom or rotation), and per foreground layer that the layer does not.
    still: float = 0.0
    still_layers: float = 0.0

    def checked(self) -> "TextureOptions":
        """A normalised copy (ranges as float pairs, size as (H, W)); StaeError names a bad option."""
        size = (self.size, self.size) if isinstance(self.size, (int, np.integer)) else tuple(self.size)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 2 for s in size):
            raise StaeError(f"size must be an integer >= 2 or a pair (H, W) of them, got {self.size!r}")
        if isinstance(self.num_frames, bool) or not isinstance(self.num_frames, (int, np.integer)) or self.num_frames < 1:
            raise StaeError(f"num_frames must be an integer >= 1, got {self.num_frames!r}")
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise StaeError(f"channels must be 1 (grey) or 3 (colour), got {self.channels!r}")
        layers = _range("layers", self.layers, 0, integer=True)
        if layers[1] > 254:
            raise StaeError(f"layers must be at most 254, got {self.layers!r}")
        size_r = _range("layer_size", self.layer_size, 0)
        if size_r[0] <= 0:
            raise StaeError(f"layer_size must be > 0, got {self.layer_size!r}")
        scale = _range("scale", self.scale, 0)
        if scale[0] <= 0:
            raise StaeError(f"scale must be > 0, got {self.scale!r}")
        zoom = _nonneg("zoom", self.zoom)
        if zoom >= 0.5:
            raise StaeError(f"zoom must be < 0.5 (a rate per frame), got {self.zoom!r}")
        return replace(self, size=(int(size[0]), int(size[1])), num_frames=int(self.num_frames), channels=int(self.channels),
                       layers=(int(layers[0]), int(layers[1])), layer_size=size_r, speed=_range("speed", self.speed),
                       pan=_range("pan", self.pan), zoom=zoom, rotation=_nonneg("rotation", self.rotation), scale=scale,
                       brightness=_nonneg("brightness", self.brightness), noise=_nonneg("noise", self.noise),
                       still=_probability("still", self.still), still_layers=_probability("still_layers", self.still_layers))

    @property
    def num_layers(self) -> int:
        """L: the background plus the most foreground layers a sequence can have."""
        return 1 + int(self.layers[1])


# ---------------------------------------------------------------------------------------------
# Photographs


def photo_files(split: str = "train", photos: str | os.PathLike | Sequence | None = None) -> tuple[str, ...]:
    """The photograph files of ``split`` (see the module docstring), as sorted absolute paths."""
    if split not in SPLITS:
        raise StaeError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if photos is None:
        return tuple(str(PHOTO_DIR / f"{name}.jpg") for name in PHOTO_SPLIT[SPLITS[split]])
    if isinstance(photos, (str, os.PathLike)):
        folder = Path(photos).expanduser()
        if not folder.is_dir():
            raise StaeError(f"photos_dir {folder}: no such directory")
        files = sorted(str(p.resolve()) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise StaeError(f"photos_dir {folder}: no {'/'.join(IMAGE_SUFFIXES)} photographs in it")
        held = set(range(4, len(files), 5)) or {len(files) - 1}
        if len(files) < 2:
            return tuple(files)  # one photograph: every split uses it
        chosen = [f for i, f in enumerate(files) if (i in held) == (SPLITS[split] == "test")]
        return tuple(chosen)
    files = tuple(str(Path(p).expanduser().resolve()) for p in photos)
    if not files:
        raise StaeError("photos: an empty list of photographs")
    return files


class PhotoPool(NamedTuple):
    """Photographs at every pyramid level, flattened into one array for vectorised gathers.

    Photo ``j`` at level ``k`` is entry ``e = j * LEVELS + k``: pixel (y, x) is row
    ``offset[e] + y * width[e] + x`` of ``pixels`` (float32 (N, C) in [0, 1]).
    """

    pixels: np.ndarray
    offset: np.ndarray  # int64 (P * LEVELS,)
    width: np.ndarray  # int64 (P * LEVELS,)
    height: np.ndarray  # int64 (P * LEVELS,)
    names: tuple[str, ...]


def _read_photo(path: str, channels: int) -> list[np.ndarray]:
    """One photograph as float32 (h, w, C) arrays, one per pyramid level."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            img = im.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise StaeError(f"photo {path}: cannot read image ({e})") from None
    w, h = img.size
    if min(w, h) < 8:
        raise StaeError(f"photo {path}: {w}x{h} is too small (at least 8 pixels a side)")
    out = []
    for k in range(LEVELS):
        side = PHOTO_SIDE >> k
        size = (max(2, round(w * side / min(w, h))), max(2, round(h * side / min(w, h))))
        lev = img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)
        a = np.asarray(lev, dtype=np.float32) / np.float32(255.0)
        out.append(a.reshape(a.shape[0], a.shape[1], channels))
    return out


@functools.lru_cache(maxsize=8)
def load_photo_pool(paths: tuple[str, ...], channels: int) -> PhotoPool:
    """The :class:`PhotoPool` of ``paths`` (cached: at most 8 pools of decoded photographs)."""
    arrays = [a for p in paths for a in _read_photo(p, channels)]
    sizes = np.array([a.shape[0] * a.shape[1] for a in arrays], np.int64)
    offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    pixels = np.concatenate([a.reshape(-1, channels) for a in arrays])
    pool = PhotoPool(pixels, offset, np.array([a.shape[1] for a in arrays], np.int64),
                     np.array([a.shape[0] for a in arrays], np.int64), tuple(Path(p).stem for p in paths))
    for a in pool[:4]:
        a.setflags(write=False)  # shared by every caller of the cache
    return pool


# ---------------------------------------------------------------------------------------------
# Drawing a scene: every layer's photograph, shape and affine maps


def _rot(theta: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 2, 2) for angles (...) in radians."""
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def _affine(lin: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(..., 2, 2) and (..., 2) -> homogeneous (..., 3, 3)."""
    out = np.zeros(lin.shape[:-2] + (3, 3))
    out[..., :2, :2] = lin
    out[..., :2, 2] = shift
    out[..., 2, 2] = 1.0
    return out


def _level(pool: PhotoPool, photo: int, scale_max: float, radius: float) -> tuple[int, float]:
    """(pyramid level, scale factor <= 1) for a layer whose texture needs a disc of ``radius``
    canvas px at up to ``scale_max`` level-0 photo px per canvas px (see the module docstring)."""
    want = min(LEVELS - 1, max(0, math.ceil(math.log2(max(scale_max, 1e-12)) - 1e-9)))
    for k in range(want, -1, -1):
        e = photo * LEVELS + k
        room = (min(pool.width[e], pool.height[e]) - 1) / 2 - 1.0  # keep 1 px inside the photo
        if radius * scale_max / 2 ** k <= room:
            return k, 1.0
    return 0, room / (radius * scale_max)


def _background(u: np.ndarray, o: TextureOptions, pool: PhotoPool, photo: int) -> tuple[np.ndarray, int, float]:
    """Canvas -> photo maps (T, 3, 3) of the background, its level and its gain rate."""
    (h, w), t = o.size, np.arange(o.num_frames)
    s0 = o.scale[0] + (o.scale[1] - o.scale[0]) * u[0]
    zoom = (2 * u[3] - 1) * o.zoom
    s_t = s0 * (1 + zoom) ** t
    half = math.hypot((w - 1) / 2, (h - 1) / 2)
    level, k = _level(pool, photo, float(s_t.max()), half)
    s_t = s_t * k / 2 ** level  # in photo px of the chosen level
    theta = np.deg2rad((2 * u[1] - 1) * 10.0 + (2 * u[2] - 1) * o.rotation * t)
    e = photo * LEVELS + level
    rho = float(s_t.max()) * half + 1.0
    room = np.array([pool.width[e] - 1 - 2 * rho, pool.height[e] - 1 - 2 * rho])
    direction = np.array([math.cos(2 * math.pi * u[5]), math.sin(2 * math.pi * u[5])])
    travel = (o.pan[0] + (o.pan[1] - o.pan[0]) * u[4]) * s_t[0] * max(o.num_frames - 1, 1) * direction
    shrink = min([1.0] + [float(room[a] / abs(travel[a])) for a in range(2) if abs(travel[a]) > room[a]])
    travel = travel * max(shrink, 0.0)
    start = rho + np.maximum(-travel, 0) + u[6:8] * np.maximum(room - np.abs(travel), 0)
    centre = start + travel * (t / max(o.num_frames - 1, 1))[:, None]  # (T, 2) photo point at the canvas centre
    lin = s_t[:, None, None] * _rot(theta)
    p0 = np.array([(w - 1) / 2, (h - 1) / 2])
    maps = _affine(lin, centre - lin @ p0)
    return maps, level, (2 * u[8] - 1) * o.brightness


def _bounce(x: np.ndarray, length: float) -> np.ndarray:
    """Positions on an unbounded line folded into [0, length] (reflection at both ends)."""
    if length <= 0:
        return np.zeros_like(x)
    return length - np.abs(np.mod(x, 2 * length) - length)


def _foreground(u: np.ndarray, harm: np.ndarray, o: TextureOptions, pool: PhotoPool, photo: int) -> dict[str, Any]:
    """One foreground layer: canvas -> object maps (T, 3, 3), object -> photo map, shape, level."""
    (h, w), t = o.size, np.arange(o.num_frames)
    a = (o.layer_size[0] + (o.layer_size[1] - o.layer_size[0]) * u[0]) * min(h, w)
    b = a * (0.5 + 0.5 * u[1])
    kind = min(int(u[2] * 3), 2)  # 0 ellipse, 1 blob, 2 polygon
    amp = 0.12 * harm[:3] if kind == 1 else np.zeros(3)
    shape = {"kind": kind, "a": a, "b": b, "sides": 3 + min(int(u[3] * 4), 3), "phase": 2 * math.pi * u[15],
             "amp": amp, "harm_phase": 2 * math.pi * harm[3:], "extent": a * (1.0 + amp.sum())}
    alpha = 2 * math.pi * u[4] + np.deg2rad((2 * u[5] - 1) * o.rotation) * t
    sigma = (1 + (2 * u[6] - 1) * o.zoom) ** t
    speed = o.speed[0] + (o.speed[1] - o.speed[0]) * u[7]
    v = speed * np.array([math.cos(2 * math.pi * u[8]), math.sin(2 * math.pi * u[8])])
    raw = np.array([u[9] * (w - 1), u[10] * (h - 1)]) + t[:, None] * v
    centre = np.stack([_bounce(raw[:, 0], w - 1), _bounce(raw[:, 1], h - 1)], -1)  # (T, 2)
    inv_lin = _rot(-alpha) / sigma[:, None, None]  # canvas -> object: u = R(-alpha)(p - d) / sigma
    to_object = _affine(inv_lin, -(inv_lin @ centre[:, :, None])[..., 0])
    extent = shape["extent"]  # the shape lies within this radius of the object origin
    s0 = o.scale[0] + (o.scale[1] - o.scale[0]) * u[11]
    # Densest sampling s0 / sigma (photo px per canvas px) when the layer is smallest; the
    # photo disc needed is s0 * extent photo px whatever the layer's own zoom.
    level, k = _level(pool, photo, float(s0 / sigma.min()), extent * float(sigma.min()))
    s = s0 * k / 2 ** level
    e = photo * LEVELS + level
    lo = s * extent + 1.0
    span = np.maximum(np.array([pool.width[e] - 1, pool.height[e] - 1]) - 2 * lo, 0)
    origin = lo + u[13:15] * span
    to_photo = _affine(s * _rot(np.array(2 * math.pi * u[12])), origin)
    return {"to_object": to_object, "to_photo": to_photo, "shape": shape, "level": level}


class Scene(NamedTuple):
    """Everything needed to render one sequence and its truth (L layer slots, T frames).

    ``to_object`` float64 (T, L, 3, 3): canvas pixel (x, y, 1) -> the layer's own coordinates
    (for the background these are its photo's pixel coordinates); ``to_photo`` (L, 3, 3): layer
    coordinates -> photo pixels at the layer's pyramid level; ``entry`` int64 (L,): photo
    ``j * LEVELS + level`` in the pool, -1 for absent layers; ``photo`` int64 (L,): ``j``, -1
    for absent layers; ``shapes``: per foreground slot a dict (None for the background and
    absent slots; see :func:`inside_shape`); ``gain`` float64 (T,): the brightness factors.
    """

    to_object: np.ndarray
    to_photo: np.ndarray
    entry: np.ndarray
    photo: np.ndarray
    shapes: list
    gain: np.ndarray


def draw_scene(seed: int, index: int, o: TextureOptions, pool: PhotoPool) -> Scene:
    """The scene of sequence ``index`` of ``seed`` (checked options ``o``), in the documented
    draw order; depends on nothing else."""
    rng = np.random.default_rng([int(seed), int(index)])
    n_fg = int(rng.integers(o.layers[0], o.layers[1] + 1))
    n_photos = len(pool.names)
    order = rng.permutation(n_photos)
    u = rng.random((o.num_layers, _DRAWS))
    harm = rng.random((o.num_layers, 6))
    t_len, big_l = o.num_frames, o.num_layers
    still = np.random.default_rng([int(seed), int(index), 2]).random(big_l) < [o.still] + [o.still_layers] * (big_l - 1)
    motionless = replace(o, speed=(0.0, 0.0), pan=(0.0, 0.0), zoom=0.0, rotation=0.0)
    to_object = np.tile(np.eye(3), (t_len, big_l, 1, 1))
    to_photo = np.tile(np.eye(3), (big_l, 1, 1))
    entry = np.full(big_l, -1, np.int64)
    photo = np.full(big_l, -1, np.int64)
    shapes: list = [None] * big_l
    for slot in range(n_fg + 1):
        photo[slot] = order[slot % n_photos]
        if slot == 0:
            to_object[:, 0], level, rate = _background(u[0], motionless if still[0] else o, pool, int(photo[0]))
        else:
            f = _foreground(u[slot], harm[slot], motionless if still[slot] else o, pool, int(photo[slot]))
            to_object[:, slot], to_photo[slot], shapes[slot], level = f["to_object"], f["to_photo"], f["shape"], f["level"]
        entry[slot] = photo[slot] * LEVELS + level
    return Scene(to_object, to_photo, entry, photo, shapes, np.exp(rate * np.arange(t_len)))


# ---------------------------------------------------------------------------------------------
# Rendering


def _pixel_grid(h: int, w: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w]
    return xs.astype(dtype), ys.astype(dtype)


def inside_shape(ux: np.ndarray, uy: np.ndarray, shape: dict) -> np.ndarray:
    """Whether object coordinates (ux, uy) lie inside a foreground shape (hard edge).

    ``shape``: ``kind`` 0 ellipse, 1 blob, 2 polygon; ``a``, ``b`` semi-axes in object units
    (canvas px at the layer's starting size); ``sides`` and ``phase`` of the polygon (regular,
    circumradius 1 before the (a, b) stretch); ``amp`` and ``harm_phase`` (3,) of the blob's
    harmonics 2-4; ``extent`` the radius that contains the shape.
    """
    vx, vy = ux * np.float32(1 / shape["a"]), uy * np.float32(1 / shape["b"])
    if shape["kind"] == 2:  # regular polygon with circumradius 1: all half-planes
        n = shape["sides"]
        inside = np.ones(vx.shape, bool)
        for i in range(n):
            th = shape["phase"] + 2 * math.pi * i / n
            inside &= vx * np.float32(math.cos(th)) + vy * np.float32(math.sin(th)) <= np.float32(math.cos(math.pi / n))
        return inside
    r = np.sqrt(vx * vx + vy * vy)
    if shape["kind"] == 0:
        return r <= 1.0
    # Blob: r <= 1 + sum_j amp_j cos(j phi + phase_j), j = 2, 3, 4, by the angle-addition recurrence.
    inv = np.float32(1.0) / np.maximum(r, np.float32(1e-12))
    c1, s1 = vx * inv, vy * inv
    cj, sj = c1 * c1 - s1 * s1, 2 * c1 * s1
    bound = np.ones_like(r)
    for j in range(3):
        amp, ph = shape["amp"][j], shape["harm_phase"][j]
        bound += cj * np.float32(amp * math.cos(ph)) - sj * np.float32(amp * math.sin(ph))
        cj, sj = cj * c1 - sj * s1, sj * c1 + cj * s1
    return r <= bound


def _box_grid(centre: np.ndarray, radius: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the pixels of a box around a layer: x (T, 1, bw) and y (T, bh, 1) int64.

    The box is the same size in every frame (the largest needed, at most the canvas) and
    shifted to stay inside the canvas, so one vectorised evaluation covers all frames.
    """
    h, w = hw
    bw = int(min(w, 2 * math.ceil(float(radius.max())) + 3))
    bh = int(min(h, 2 * math.ceil(float(radius.max())) + 3))
    x0 = np.clip(np.floor(centre[:, 0] - radius) - 1, 0, w - bw).astype(np.int64)
    y0 = np.clip(np.floor(centre[:, 1] - radius) - 1, 0, h - bh).astype(np.int64)
    return x0[:, None, None] + np.arange(bw)[None, None, :], y0[:, None, None] + np.arange(bh)[None, :, None]


def render_owner(scene: Scene, hw: tuple[int, int]) -> np.ndarray:
    """owner uint8 (T, H, W): the topmost layer at each pixel (0 = background).

    Each layer is evaluated only in a box around it: its shape lies within ``extent`` of
    the object origin, i.e. within ``extent / scale`` canvas px of its centre.
    """
    h, w = hw
    t_len = scene.to_object.shape[0]
    owner = np.zeros((t_len, h, w), np.uint8)
    flat = owner.reshape(-1)
    frame_base = (np.arange(t_len, dtype=np.int64) * (h * w))[:, None, None]
    for slot, shape in enumerate(scene.shapes):
        if shape is None:
            continue
        to_obj = scene.to_object[:, slot]
        back = np.linalg.inv(to_obj)  # object -> canvas: its translation is the layer's centre
        scale = np.sqrt(np.abs(np.linalg.det(to_obj[:, :2, :2])))  # object units per canvas px
        xs, ys = _box_grid(back[:, :2, 2], shape["extent"] / scale, hw)
        m = to_obj[:, None, None, :2, :].astype(np.float32)
        xf, yf = xs.astype(np.float32), ys.astype(np.float32)
        ux = m[..., 0, 0] * xf + m[..., 0, 1] * yf + m[..., 0, 2]
        uy = m[..., 1, 0] * xf + m[..., 1, 1] * yf + m[..., 1, 2]
        inside = inside_shape(ux, uy, shape)
        flat[(frame_base + ys * w + xs)[inside]] = slot
    return owner


def _pixel_maps(maps: np.ndarray, owner: np.ndarray, dtype) -> list[np.ndarray]:
    """maps (T, L, 3, 3), owner (T, H, W) -> the six coefficients of each pixel's owner's map,
    each (T, H, W) (one small-table gather each, no (T, H, W, 2, 3) intermediate)."""
    t_len, big_l = maps.shape[:2]
    idx = (np.arange(t_len, dtype=np.int64)[:, None, None] * big_l + owner).ravel()
    table = maps[:, :, :2, :].reshape(t_len * big_l, 6).astype(dtype)
    return [np.take(table[:, k], idx).reshape(owner.shape) for k in range(6)]


def sample_photos(pool: PhotoPool, entry: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Bilinear samples (..., C) float32 of pool entries ``entry`` (...) at photo pixel coordinates.

    The scene keeps every coordinate at least one pixel inside its photograph; the clip is a
    guard only.
    """
    w = pool.width[entry]
    x0 = np.floor(qx).astype(np.int64)
    y0 = np.floor(qy).astype(np.int64)
    np.clip(x0, 0, w - 2, out=x0)
    np.clip(y0, 0, pool.height[entry] - 2, out=y0)
    fx = (qx - x0).astype(np.float32)[..., None]
    fy = (qy - y0).astype(np.float32)[..., None]
    i00 = pool.offset[entry] + y0 * w + x0
    px = pool.pixels
    top = np.take(px, i00, axis=0)
    top += (np.take(px, i00 + 1, axis=0) - top) * fx
    i00 += w
    bottom = np.take(px, i00, axis=0)
    bottom += (np.take(px, i00 + 1, axis=0) - bottom) * fx
    top += (bottom - top) * fy
    return top


def render(scene: Scene, pool: PhotoPool, hw: tuple[int, int], noise: float = 0.0,
           noise_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """frames uint8 (T, C, H, W) and owner uint8 (T, H, W) of a scene."""
    owner = render_owner(scene, hw)
    m = _pixel_maps(scene.to_photo[None] @ scene.to_object, owner, np.float32)  # canvas -> photo
    xs, ys = _pixel_grid(*hw, dtype=np.float32)
    qx = m[0] * xs + m[1] * ys + m[2]
    qy = m[3] * xs + m[4] * ys + m[5]
    frames = sample_photos(pool, scene.entry[owner], qx, qy)  # (T, H, W, C) float32
    if np.any(scene.gain != 1.0):
        frames *= scene.gain.astype(np.float32)[:, None, None, None]
    if noise > 0:
        frames += (noise * noise_rng.standard_normal(frames.shape)).astype(np.float32)
    np.clip(frames, 0.0, 1.0, out=frames)
    frames *= np.float32(255.0)
    return np.rint(frames).astype(np.uint8).transpose(0, 3, 1, 2), owner


# ---------------------------------------------------------------------------------------------
# Ground truth from the owner map and the layers' maps


def layer_masks(owner: np.ndarray, num_layers: int, out: np.ndarray | None = None) -> np.ndarray:
    """owner uint8 (..., H, W) -> masks bool (..., L, H, W), masks[l] = (owner == l)."""
    ls = np.arange(num_layers, dtype=owner.dtype).reshape(num_layers, 1, 1)
    return np.equal(owner[..., None, :, :], ls, out=out)


def layer_flow(owner: np.ndarray, to_object: np.ndarray) -> np.ndarray:
    """The backward flow float32 (T-1, 2, H, W) in pixels (module docstring) from owner
    (T, H, W) and the canvas -> object maps (T, L, 3, 3)."""
    step = np.linalg.inv(to_object[:-1]) @ to_object[1:]  # (T-1, L, 3, 3): p in t+1 -> p in t
    step[..., 0, 0] -= 1.0  # minus the identity: the displacement, without cancellation
    step[..., 1, 1] -= 1.0
    step[(to_object[:-1] == to_object[1:]).all((-2, -1))] = 0.0  # a still layer: exactly zero (not inv(A) A - I)
    m = _pixel_maps(step, owner[1:], np.float32)
    xs, ys = _pixel_grid(*owner.shape[1:], dtype=np.float32)
    flow = np.empty((owner.shape[0] - 1, 2) + owner.shape[1:], np.float32)
    np.add(m[0] * xs + m[1] * ys, m[2], out=flow[:, 0])
    np.add(m[3] * xs + m[4] * ys, m[5], out=flow[:, 1])
    return flow


def _taps(src: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The two pixel indices bilinear interpolation reads along one axis: floor and floor + 1,
    or the pixel itself (twice) when ``src`` is within _EPS of it."""
    lo = np.floor(src + _EPS)
    frac = src - lo
    hi = lo + (frac > _EPS)
    return np.clip(lo, 0, n - 1).astype(np.intp), np.clip(hi, 0, n - 1).astype(np.intp)


def occlusion_mask(owner: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """bool (T-1, H, W) on frame t+1: its source in frame t is outside the frame or (any of
    its bilinear taps) owned by another layer; ``flow`` float32 (T-1, 2, H, W) in pixels."""
    t1, h, w = owner.shape[0] - 1, owner.shape[1], owner.shape[2]
    xs, ys = _pixel_grid(h, w, dtype=np.float32)
    sx = xs + flow[:, 0]
    sy = ys + flow[:, 1]
    out = (sx < -_EPS) | (sx > w - 1 + _EPS) | (sy < -_EPS) | (sy > h - 1 + _EPS)
    x0, x1 = _taps(sx, w)
    y0, y1 = _taps(sy, h)
    prev = owner[:-1].reshape(-1)
    mine = owner[1:]
    base = (np.arange(t1, dtype=np.intp) * (h * w))[:, None, None]
    y0 = y0 * w + base
    y1 = y1 * w + base
    for yy in (y0, y1):
        for xx in (x0, x1):
            out |= np.take(prev, yy + xx) != mine
    return out


# ---------------------------------------------------------------------------------------------
# Batch generation and the Dataset


def generate(seed: int, indices, split: str = "train", photos=None, with_truth: bool = False,
             **options) -> dict[str, np.ndarray]:
    """Sequences ``indices`` of ``seed`` as numpy arrays (``options``: :class:`TextureOptions`).

    Returns, with B = len(indices), L = 1 + max layers:

    * ``frames`` uint8 (B, T, C, H, W); ``owner`` uint8 (B, T, H, W) (0 = background);
    * ``to_object`` float64 (B, T, L, 3, 3) (canvas -> layer maps); ``photo_ids`` int16 (B, L):
      the photograph of each layer slot in :func:`photo_files` order (-1 for absent layers);
    * with ``with_truth``: ``masks`` bool (B, T, L, H, W), ``flow`` float32 (B, T-1, 2, H, W),
      ``occlusion`` bool (B, T-1, H, W) (module docstring).
    """
    o = TextureOptions(**options).checked()
    if with_truth and o.num_frames < 2:
        raise StaeError("ground-truth flow needs num_frames >= 2")
    pool = load_photo_pool(photo_files(split, photos), o.channels)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if (indices < 0).any():
        raise StaeError("sequence indices must be >= 0")
    (h, w), t, c, big_l = o.size, o.num_frames, o.channels, o.num_layers
    b = len(indices)
    out = {"frames": np.empty((b, t, c, h, w), np.uint8), "owner": np.empty((b, t, h, w), np.uint8),
           "to_object": np.empty((b, t, big_l, 3, 3)), "photo_ids": np.empty((b, big_l), np.int16)}
    if with_truth:
        out.update(masks=np.empty((b, t, big_l, h, w), bool), flow=np.empty((b, t - 1, 2, h, w), np.float32),
                   occlusion=np.empty((b, t - 1, h, w), bool))
    for j, i in enumerate(indices):
        scene = draw_scene(seed, int(i), o, pool)
        noise_rng = np.random.default_rng([int(seed), int(i), 1]) if o.noise > 0 else None
        out["frames"][j], out["owner"][j] = render(scene, pool, (h, w), o.noise, noise_rng)
        out["to_object"][j], out["photo_ids"][j] = scene.to_object, scene.photo
        if with_truth:
            layer_masks(out["owner"][j], big_l, out=out["masks"][j])
            out["flow"][j] = layer_flow(out["owner"][j], scene.to_object)
            out["occlusion"][j] = occlusion_mask(out["owner"][j], out["flow"][j])
    return out


def to_tensors(g: dict[str, np.ndarray], j: int, with_truth: bool) -> dict[str, torch.Tensor]:
    """Sequence ``j`` of a :func:`generate` batch as the dataset dict."""
    item = {"clip": torch.from_numpy(g["frames"][j].astype(np.float32) / np.float32(255.0))}
    if with_truth:
        for key in ("masks", "flow", "occlusion"):
            item[key] = torch.from_numpy(np.ascontiguousarray(g[key][j]))
    return item


class MovingTextures(Dataset):
    """Real textures in motion, generated on the fly, deterministic per (seed, index).

    ``ds[i]`` -> {"clip": float32 (T, C, H, W) in [0, 1]} and, with ``with_truth``, "masks"
    bool (T, L, H, W), "flow" float32 (T-1, 2, H, W) (backward, pixels) and "occlusion" bool
    (T-1, H, W). ``photos``: None (the shipped photographs of ``split``), a folder or a list of
    files; ``options``: :class:`TextureOptions` fields. A DataLoader fetches a batch with one
    call (``__getitems__``).
    """

    def __init__(self, num_sequences: int, seed: int, split: str = "train", photos=None, with_truth: bool = False,
                 **options):
        if isinstance(num_sequences, bool) or not isinstance(num_sequences, (int, np.integer)) or num_sequences < 0:
            raise StaeError(f"num_sequences must be an integer >= 0, got {num_sequences!r}")
        self.num_sequences, self.seed, self.split = int(num_sequences), int(seed), split
        self.photos = photo_files(split, photos)  # validated here, not in a DataLoader worker
        self.with_truth = bool(with_truth)
        self.options = TextureOptions(**options).checked()
        if self.with_truth and self.options.num_frames < 2:
            raise StaeError("ground-truth flow needs num_frames >= 2")

    def __len__(self) -> int:
        return self.num_sequences

    def generate(self, indices) -> dict[str, np.ndarray]:
        """The numpy batch for ``indices`` (see :func:`generate`)."""
        checked = []
        for i in indices:
            i = int(i) + (self.num_sequences if int(i) < 0 else 0)
            if not 0 <= i < self.num_sequences:
                raise IndexError(f"sequence index {i} out of range for {self.num_sequences} sequences")
            checked.append(i)
        opts = {f: getattr(self.options, f) for f in TextureOptions.__dataclass_fields__}
        return generate(self.seed, checked, split=self.split, photos=list(self.photos), with_truth=self.with_truth, **opts)

    def __getitems__(self, indices) -> list[dict[str, torch.Tensor]]:
        g = self.generate(indices)
        return [to_tensors(g, j, self.with_truth) for j in range(len(indices))]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]
