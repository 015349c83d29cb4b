"""Frames from any source, made to fit a model: the input side of predict, propagate and
evaluate on user footage.

:func:`open_frames` streams a video file, a folder of frames or one sequence of a clip file as
float (C, H, W) frames in [0, 1]; :class:`FrameFit` crops, resizes and converts channels (RGB
-> gray by BT.601 luma, :data:`LUMA`); :func:`fit_for_model` chooses the fit for a model and
:func:`fitted_frames` applies it to a stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from stae.errors import StaeError
from stae.model.autoencoder import SpatioTemporalAutoencoder

CLIP_SUFFIXES = (".npy", ".npz")
# ITU-R BT.601 luma, the weights OpenCV and stae.baselines use for RGB -> gray.
LUMA = (0.299, 0.587, 0.114)


# ------------------------------------------------------------------ reading frames


def open_frames(source: Union[str, os.PathLike], index: Optional[int] = None) -> Iterator[torch.Tensor]:
    """Stream the frames of ``source`` as float32 (C, H, W) in [0, 1], C = 1 or 3.

    ``source``: a video file (.mp4 .avi .mkv .mov .webm), a folder of frames, or a clip file
    (.npy/.npz, see :mod:`stae.data.files`) of which sequence ``index`` (default 0) is used.
    Video files and folders are decoded in colour (RGB) or gray as stored: a folder of gray
    PNGs gives C = 1, anything else C = 3; :class:`FrameFit` converts to the model's C.
    """
    from stae.data.files import check_pixels, load_clip_file
    from stae.data.video import iter_frames

    p = Path(source)
    if not p.exists():
        raise StaeError(f"{p}: no such file or directory")
    if p.is_file() and p.suffix.lower() in CLIP_SUFFIXES:
        clips = load_clip_file(p)
        i = 0 if index is None else index
        if not -len(clips) <= i < len(clips):
            raise StaeError(f"{p}: --index {i} out of range ({len(clips)} sequence(s) in the file)")
        clip = check_pixels(np.asarray(clips[i]), f"{p}, sequence {i}")  # (T, C, H, W), memory-mapped until here
        scale = 255.0 if clip.dtype == np.uint8 else 1.0
        for f in clip:
            yield torch.from_numpy(f.astype(np.float32) / np.float32(scale))
        return
    if index is not None:
        raise StaeError(f"--index applies to clip files ({'/'.join(CLIP_SUFFIXES)}), not to {p}")
    gray = _is_gray_source(p)
    for f in iter_frames(p, grayscale=gray):
        yield torch.from_numpy(f.astype(np.float32) / np.float32(255.0))  # astype copies: writable


def _is_gray_source(p: Path) -> bool:
    """True for a folder whose first frame is a one-channel image (keep it gray, not RGB)."""
    if not p.is_dir():
        return False
    from PIL import Image

    from stae.data.video import IMAGE_SUFFIXES

    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        return False
    try:
        with Image.open(files[0]) as im:
            return im.mode in ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B")
    except OSError:
        return False  # iter_frames reports the unreadable file with its name


# ------------------------------------------------------------------ fitting frames to a model


@dataclass(frozen=True)
class FrameFit:
    """How a source frame size becomes one the model takes.

    Frames are first cropped to ``crop`` = (top, left, height, width) of the source, then, if
    ``size`` differs from the crop, resized to ``size`` = (H, W) (bilinear, antialiased, for
    images; nearest for label maps). Channels become the model's C: RGB -> gray by BT.601 luma,
    gray -> RGB by repetition.
    """

    channels: int
    source_hw: tuple[int, int]
    crop: tuple[int, int, int, int]
    size: tuple[int, int]

    @property
    def changes_geometry(self) -> bool:
        return self.crop != (0, 0, *self.source_hw) or self.size != self.source_hw

    def describe(self) -> str:
        h, w = self.source_hw
        t, l, ch, cw = self.crop
        if not self.changes_geometry:
            return f"{w}x{h} (WxH), used as is"
        s = f"{w}x{h} (WxH)"
        if (ch, cw) != (h, w):
            s += f" cropped to {cw}x{ch} at x={l}, y={t}"
        if self.size != (ch, cw):
            s += f", resized to {self.size[1]}x{self.size[0]}"
        return s

    def frame(self, f: torch.Tensor) -> torch.Tensor:
        """(C_in, H, W) -> (C_model, H', W'), float in [0, 1]."""
        if tuple(f.shape[-2:]) != self.source_hw:
            raise StaeError(f"frame of size {f.shape[-1]}x{f.shape[-2]} (WxH) in a video whose first frame is "
                            f"{self.source_hw[1]}x{self.source_hw[0]}")
        f = self._crop(f)
        if tuple(f.shape[-2:]) != self.size:
            f = F.interpolate(f.unsqueeze(0), size=self.size, mode="bilinear", antialias=True,
                              align_corners=False)[0].clamp_(0.0, 1.0)
        return to_channels(f, self.channels)

    def labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Integer label map (H, W) -> (H', W'), nearest neighbour (labels are not blended)."""
        lab = self._crop(labels)
        if tuple(lab.shape[-2:]) != self.size:
            lab = F.interpolate(lab[None, None].float(), size=self.size, mode="nearest")[0, 0].to(labels.dtype)
        return lab

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        t, l, h, w = self.crop
        return x[..., t:t + h, l:l + w]


def to_channels(f: torch.Tensor, channels: int) -> torch.Tensor:
    """(C, H, W) -> (channels, H, W): RGB -> gray by BT.601 luma, gray -> RGB by repetition."""
    c = f.shape[0]
    if c == channels:
        return f
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=f.dtype).view(3, 1, 1)
        return (f * w).sum(0, keepdim=True)
    if c == 1:
        return f.expand(channels, -1, -1).contiguous()
    raise StaeError(f"frames with {c} channels cannot be given to a model that takes {channels}")


def fit_for_model(model: SpatioTemporalAutoencoder, source_hw: tuple[int, int],
                  size: Optional[tuple[int, int]] = None) -> FrameFit:
    """The :class:`FrameFit` for frames of ``source_hw`` = (H, W).

    ``size`` given: centre-crop to its aspect ratio, then resize to it. Otherwise a model
    with fully-connected memory gets its fixed ``fc_frame_size`` the same way, and a
    convolutional one takes the centre crop whose sides are multiples of the encoder's stride
    (no resampling, so the pixels are the video's). The result is checked with
    ``model.check_frame_shape``, so an impossible size is one clear :class:`StaeError`.
    """
    cfg = model.config
    h, w = source_hw
    if size is None and cfg.memory == "fc":
        size = (int(cfg.fc_frame_size[0]), int(cfg.fc_frame_size[1]))
    if size is not None:
        th, tw = size
        model.check_frame_shape((cfg.in_channels, th, tw), "--size")
        # Largest centred crop of the target aspect ratio.
        if h * tw > w * th:
            ch, cw = max(1, round(w * th / tw)), w
        else:
            ch, cw = h, max(1, round(h * tw / th))
    else:
        s = model.stride
        ch, cw = h // s * s, w // s * s
        if ch == 0 or cw == 0:
            raise StaeError(f"frames of {w}x{h} (WxH) are smaller than the model's stride {s}; "
                            f"give --size (e.g. --size {max(s, h // s * s or s)}x{max(s, w // s * s or s)})")
        size = (ch, cw)
    fit = FrameFit(cfg.in_channels, (h, w), ((h - ch) // 2, (w - cw) // 2, ch, cw), size)
    model.check_frame_shape((cfg.in_channels, *size), "fitted frame")
    from stae.machine import activation_bytes, require_memory

    require_memory(activation_bytes(cfg, 1, *size), f"the model on frames of {size[1]}x{size[0]} (WxH)")
    return fit


def fitted_frames(model: SpatioTemporalAutoencoder, frames: Iterable[torch.Tensor],
                  size: Optional[tuple[int, int]] = None) -> tuple[Optional[FrameFit], Iterator[torch.Tensor]]:
    """Peek at the first frame, build the :class:`FrameFit`, and return it with the fitted stream.

    Returns ``(None, empty iterator)`` for an empty stream.
    """
    it = iter(frames)
    first = next(it, None)
    if first is None:
        return None, iter(())
    fit = fit_for_model(model, tuple(first.shape[-2:]), size)

    def gen() -> Iterator[torch.Tensor]:
        yield fit.frame(first)
        for f in it:
            yield fit.frame(f)

    return fit, gen()
