"""Real videos as clips: video files (decoded with PyAV) and folders of frames.

* **Sources.** Video files ``.mp4 .avi .mkv .mov .webm`` and *frame folders* (a directory
  holding ``.png``/``.jpg``/``.jpeg`` files, one per frame, in natural order: ``2.png`` before
  ``10.png``). :func:`find_videos` looks for both recursively, so HMDB-51's layout
  (``<class>/<video>.avi``) works as is.
* **Index.** Each video's frames are counted once by *demuxing* its packets (no decoding),
  which also records every frame's timestamp; reading a clip then seeks to the keyframe
  before it and decodes only up to its last frame. A long video is never held in memory.
* **Frames.** Grayscale (luma) or RGB; with ``size=(H, W)``, ``crop="center"`` scales the
  frame (bilinear, antialiased, Pillow) so that it covers ``H x W`` and takes the centre,
  ``crop="resize"`` stretches it to ``H x W``. ``size=None`` keeps the native size.
* **Clips.** ``clip_len`` frames (the model's tau+1) taken every ``stride`` frames, so a clip
  spans ``(clip_len - 1) * stride + 1`` frames; successive clips start ``step`` frames apart
  (default: one span, i.e. non-overlapping).
* **Split by video**, never by clip: the sorted relative paths are shuffled with ``seed`` and
  the first ``round(val_fraction * n)`` (at least 1 when there are >= 2 videos) form ``val``.
  One video is a dataset too: its clips are split in time (the last ``val_fraction`` are ``val``).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from stae.errors import StaeError

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm")
# Every image format the frame readers accept (Pillow reads them all); the one list.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff")
CROPS = ("center", "resize")


def natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def _image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)


def _exists(path: Path) -> None:
    if not path.exists():
        raise StaeError(f"{path}: no such file or directory")


def find_videos(root: str | os.PathLike) -> list[Path]:
    """Video files and frame folders under ``root`` (recursively), sorted by path.

    ``root`` may itself be a video file or a frame folder.
    """
    root = Path(root)
    _exists(root)
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXTS:
            raise StaeError(f"{root}: unsupported extension {root.suffix or '(none)'!r} (videos: {' '.join(VIDEO_EXTS)}; "
                            f"or a folder of {'/'.join(IMAGE_SUFFIXES)} frames)")
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        d = Path(dirpath)
        if any(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in filenames):
            found.append(d)
        found.extend(d / f for f in sorted(filenames) if Path(f).suffix.lower() in VIDEO_EXTS)
    if not found:
        raise StaeError(f"{root}: no videos ({' '.join(VIDEO_EXTS)}) or frame folders ({'/'.join(IMAGE_SUFFIXES)}) found")
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Frame conversion


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise StaeError(f"frame size must be positive, got {size}")
    return h, w


def _fit(img, size: tuple[int, int] | None, crop: str) -> np.ndarray:
    """PIL image -> uint8 (C, H, W) at ``size`` (see module docstring)."""
    from PIL import Image

    if size is not None:
        h, w = size
        w0, h0 = img.size
        if crop == "resize":
            if (w0, h0) != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
        else:
            scale = max(h / h0, w / w0)
            sw, sh = max(w, round(w0 * scale)), max(h, round(h0 * scale))
            if (sw, sh) != (w0, h0):
                img = img.resize((sw, sh), Image.Resampling.BILINEAR)
            left, top = (sw - w) // 2, (sh - h) // 2
            img = img.crop((left, top, left + w, top + h))
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def _open_image(path: Path, grayscale: bool):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("L" if grayscale else "RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise StaeError(f"{path}: cannot read image frame ({e})") from None


def _video_frame_to_pil(frame, grayscale: bool, reformatter):
    """A decoded PyAV frame as a PIL image: luma (swscale's gray) or RGB.

    One ``VideoReformatter`` per video keeps swscale's context: ``frame.to_ndarray(format=...)``
    builds a new one for every frame, which costs ~30x more than the conversion itself.
    """
    from PIL import Image

    return Image.fromarray(reformatter.reformat(frame, format="gray" if grayscale else "rgb24").to_ndarray())


_WARNED_SHORT: set[str] = set()


def warn_if_short(path: Path, found: int, stream) -> None:
    """Warn once per file when a video yields fewer frames than its header announces (a
    truncated download or copy): the missing frames are not invented, but the user should know."""
    announced = int(getattr(stream, "frames", 0) or 0)
    if 0 < found < announced and str(path) not in _WARNED_SHORT:
        _WARNED_SHORT.add(str(path))
        warnings.warn(f"{path}: {found} frames read, but its header announces {announced} (truncated video?)",
                      stacklevel=3)


# ---------------------------------------------------------------------------------------------
# Index


@dataclass(frozen=True)
class VideoInfo:
    """One video's index: its frame count and, for video files, each frame's pts (sorted)."""

    path: Path
    num_frames: int
    pts: tuple[int, ...] | None = None  # None: frame folder, or timestamps unknown


def _open_container(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise StaeError(f"{path}: cannot open video (corrupt, truncated or not a video: {e})") from None
    if not container.streams.video:
        container.close()
        raise StaeError(f"{path}: no video stream")
    return container


def probe(path: str | os.PathLike) -> VideoInfo:
    """Count the frames of a video file (by demuxing packets, no decoding) or frame folder."""
    import av

    path = Path(path)
    _exists(path)
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise StaeError(f"{path}: frame folder holds no {'/'.join(IMAGE_SUFFIXES)} files")
        return VideoInfo(path, len(files))
    if path.suffix.lower() not in VIDEO_EXTS:
        raise StaeError(f"{path}: unsupported extension {path.suffix or '(none)'!r} (videos: {' '.join(VIDEO_EXTS)})")
    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        pts: list[int | None] = []
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's final flush packet
                continue
            pts.append(packet.pts)
        warn_if_short(path, len(pts), stream)
    except av.FFmpegError as e:
        raise StaeError(f"{path}: corrupt or truncated video ({e})") from None
    finally:
        container.close()
    if not pts:
        raise StaeError(f"{path}: no video frames (empty, corrupt or truncated)")
    known = None if any(p is None for p in pts) else tuple(sorted(pts))  # type: ignore[arg-type]
    return VideoInfo(path, len(pts), known)


# ---------------------------------------------------------------------------------------------
# Reading frames


def _decode(path: Path, container, stream, start: int, pts: tuple[int, ...] | None):
    """Yield decoded frames of ``stream`` from frame ``start`` on (seeking when pts are known)."""
    if pts is not None and start > 0:
        target = pts[start]
        container.seek(target, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                raise StaeError(f"{path}: decoded frames carry no timestamps after seeking")
            if frame.pts >= target:
                yield frame
        return
    index = 0
    for frame in container.decode(stream):
        if index >= start:
            yield frame
        index += 1


def read_frames(path: str | os.PathLike, start: int, count: int, size=None, grayscale: bool = True, crop: str = "center",
                stride: int = 1, info: VideoInfo | None = None) -> np.ndarray:
    """Frames ``start, start + stride, ...`` (``count`` of them) of a video file or frame folder
    as uint8 (count, C, H, W), C = 1 (grayscale) or 3 (RGB).

    Only the needed frames are decoded: with an ``info`` from :func:`probe` the decoder seeks
    to the keyframe before ``start``; without one it decodes sequentially up to the clip.
    """
    import av

    path = Path(path)
    size = _check_size(size)
    if crop not in CROPS:
        raise StaeError(f"crop must be one of {CROPS}, got {crop!r}")
    if start < 0 or count < 1 or stride < 1:
        raise StaeError(f"read_frames: need start >= 0, count >= 1, stride >= 1 (got {start}, {count}, {stride})")
    _exists(path)
    wanted = [start + i * stride for i in range(count)]
    if path.is_dir():
        files = _image_files(path)
        if wanted[-1] >= len(files):
            raise StaeError(f"{path}: {len(files)} frames, too short for frames {start}..{wanted[-1]}")
        return np.stack([_fit(_open_image(files[i], grayscale), size, crop) for i in wanted])
    if path.suffix.lower() not in VIDEO_EXTS:
        raise StaeError(f"{path}: unsupported extension {path.suffix or '(none)'!r} (videos: {' '.join(VIDEO_EXTS)})")
    from av.video.reformatter import VideoReformatter

    out = []
    reformatter = VideoReformatter()
    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        pts = info.pts if info is not None else None
        if pts is not None and wanted[-1] >= len(pts):
            raise StaeError(f"{path}: {len(pts)} frames, too short for frames {start}..{wanted[-1]}")
        for offset, frame in enumerate(_decode(path, container, stream, start, pts)):
            if offset % stride == 0:
                out.append(_fit(_video_frame_to_pil(frame, grayscale, reformatter), size, crop))
                if len(out) == count:
                    break
    except av.FFmpegError as e:
        raise StaeError(f"{path}: corrupt or truncated video ({e})") from None
    finally:
        container.close()
    if len(out) < count:
        raise StaeError(f"{path}: decoded only {len(out)} of the {count} frames wanted from frame {start} (short, corrupt or truncated video)")
    return np.stack(out)


def iter_frames(path: str | os.PathLike, size=None, grayscale: bool = True, crop: str = "center") -> Iterator[np.ndarray]:
    """Stream every frame of a video file or frame folder as uint8 (C, H, W), one at a time."""
    import av

    path = Path(path)
    size = _check_size(size)
    if crop not in CROPS:
        raise StaeError(f"crop must be one of {CROPS}, got {crop!r}")
    _exists(path)
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise StaeError(f"{path}: frame folder holds no {'/'.join(IMAGE_SUFFIXES)} files")
        for f in files:
            yield _fit(_open_image(f, grayscale), size, crop)
        return
    if path.suffix.lower() not in VIDEO_EXTS:
        raise StaeError(f"{path}: unsupported extension {path.suffix or '(none)'!r} (videos: {' '.join(VIDEO_EXTS)})")
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    container = _open_container(path)
    try:
        n = 0
        for frame in container.decode(container.streams.video[0]):
            n += 1
            yield _fit(_video_frame_to_pil(frame, grayscale, reformatter), size, crop)
        warn_if_short(path, n, container.streams.video[0])
    except av.FFmpegError as e:
        raise StaeError(f"{path}: corrupt or truncated video after {n} frames ({e})") from None
    finally:
        container.close()
    if n == 0:
        raise StaeError(f"{path}: no decodable video frames")


# ---------------------------------------------------------------------------------------------
# Dataset


def split_videos(videos: list[Path], root: Path, split: str, val_fraction: float, seed: int) -> list[Path]:
    """The videos of ``split`` ('train', 'val' or 'all'): a seeded shuffle of the relative paths."""
    if split == "all":
        return list(videos)
    if split not in ("train", "val"):
        raise StaeError(f"split must be 'train', 'val' or 'all', got {split!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise StaeError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(videos)
    if n == 1:  # one video is a dataset too: VideoClipDataset splits its clips in time
        return list(videos)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    rel = sorted(videos, key=lambda p: p.relative_to(root).as_posix() if p != root else "")
    order = np.random.default_rng(seed).permutation(n)
    val = {rel[i] for i in order[:n_val]}
    chosen = [v for v in rel if (v in val) == (split == "val")]
    if not chosen:
        raise StaeError(f"{root}: no videos in the {split!r} split ({n} video(s), val_fraction {val_fraction}); use split='all'")
    return chosen


def split_in_time(clips: list, split: str, val_fraction: float) -> list:
    """The clips of one video for ``split``: the last ``val_fraction`` of them (at least one when
    there are two or more) are 'val', the ones before 'train'. Clips do not overlap by default,
    so no frame is in both."""
    n = len(clips)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    return clips[n - n_val:] if split == "val" else clips[:n - n_val]


class VideoClipDataset(Dataset):
    """Clips of real videos: ``ds[i]`` -> {"clip": float32 (T, C, H, W) in [0, 1]}, T = clip_len.

    ``root``: a directory (searched recursively), a video file or a frame folder.
    ``skip_bad``: videos that cannot be read or are shorter than one clip are skipped with
    one warning line each instead of raising :class:`~stae.errors.StaeError`.
    """

    def __init__(self, root: str | os.PathLike, clip_len: int, size=(64, 64), grayscale: bool = True, stride: int = 1,
                 split: str = "train", val_fraction: float = 0.1, seed: int = 0, skip_bad: bool = False,
                 crop: str = "center", step: int | None = None):
        self.root = Path(root)
        if clip_len < 1 or stride < 1:
            raise StaeError(f"clip_len and stride must be >= 1, got {clip_len} and {stride}")
        if crop not in CROPS:
            raise StaeError(f"crop must be one of {CROPS}, got {crop!r}")
        self.clip_len, self.stride = int(clip_len), int(stride)
        self.size, self.grayscale, self.crop = _check_size(size), bool(grayscale), crop
        self.span = (self.clip_len - 1) * self.stride + 1
        self.step = self.span if step is None else int(step)
        if self.step < 1:
            raise StaeError(f"step must be >= 1, got {step}")
        found = find_videos(self.root)
        videos = split_videos(found, self.root, split, val_fraction, seed)
        self.videos: list[VideoInfo] = []
        self.skipped: list[tuple[Path, str]] = []
        for v in videos:
            try:
                info = probe(v)
                if info.num_frames < self.span:
                    raise StaeError(f"{v}: {info.num_frames} frames, shorter than one clip of {self.span} frames "
                                    f"(clip_len {self.clip_len}, stride {self.stride})")
            except StaeError as e:
                if not skip_bad:
                    raise
                warnings.warn("skipping " + " ".join(str(e).split()), stacklevel=2)  # one line
                self.skipped.append((v, str(e)))
                continue
            self.videos.append(info)
        # (video index, first frame) of every clip
        self.clips: list[tuple[int, int]] = [(vi, s) for vi, info in enumerate(self.videos)
                                             for s in range(0, info.num_frames - self.span + 1, self.step)]
        if len(found) == 1 and split in ("train", "val"):
            self.clips = split_in_time(self.clips, split, val_fraction)
        if not self.clips:
            raise StaeError(f"{self.root}: no clips of {self.span} frames in the {split!r} split"
                            + (f" (one video: val_fraction {val_fraction} of its clips)" if len(found) == 1 else ""))

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        vi, start = self.clips[i]
        info = self.videos[vi]
        frames = read_frames(info.path, start, self.clip_len, size=self.size, grayscale=self.grayscale, crop=self.crop,
                             stride=self.stride, info=info)
        return {"clip": torch.from_numpy(frames).float().div_(255.0)}
