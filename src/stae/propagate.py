"""Label propagation along the model's predicted flow (the paper's application: weakly
supervised video segmentation from one labelled frame): ``stae propagate``.

Rule. The step on frame t gives the backward flow ``T_t`` with ``pred_{t+1}(p) ~ frame_t(p +
T_t(p))`` (eq. 4); upsampled to image resolution it carries the labels the same way:

    labels_{t+1}(p) = labels_t(p + T_t(p))

Labels are integers, so they are not sampled directly: the map is split into one-hot
channels (one per label present), each channel is warped with :func:`stae.model.warp.warp`
(bilinear: the four neighbours of ``p + T_t(p)`` vote with their bilinear weights), and the
label with the largest vote wins (argmax; ties go to the smaller label). The one-hot maps
are rebuilt from the argmax at every step, so votes never blur over time. Nearest-neighbour
sampling is the alternative (take the label of the nearest pixel); the vote is its smooth
version and agrees with it wherever the four neighbours agree. A pixel whose source lies
outside the frame gets no vote and becomes 0 (background).

Baselines (as in the video-segmentation literature): copy the first mask to every frame, and
propagate along OpenCV DIS flow, ``dis_backward_flow(frame_{t+1}, frame_t)`` (backward, image
resolution), with the same rule. Scores: region IoU (Jaccard), :func:`stae.metrics.iou`, the
mean over the labels other than 0.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from stae.errors import StaeError
from stae.model.autoencoder import SpatioTemporalAutoencoder
from stae.data.video import natural_key
from stae.model.warp import upsample_flow, warp

# Channels warped at once: bounds memory (chunk x H x W floats) for label maps with many labels.
LABEL_CHUNK = 16
METHODS = ("stae", "dis", "copy_first")


# --------------------------------------------------------------------------------------
# Label maps on disk


def read_label_png(path: Union[str, os.PathLike]) -> torch.Tensor:
    """A PNG of integer labels -> int64 (H, W).

    Accepted: 8-bit gray ("L"), palette ("P": the palette *indices* are the labels, as in
    DAVIS annotations), 1-bit, and 16/32-bit integer images. An RGB(A) picture is refused:
    its colours are not labels.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV", "F"):
                raise StaeError(f"{p}: a label map must be a single-channel integer PNG (gray, palette or 16-bit), "
                                f"not {mode}")
            a = np.asarray(im.convert("L") if mode == "1" else im)
    except UnidentifiedImageError:
        raise StaeError(f"{p}: not an image file") from None
    if a.ndim != 2:
        raise StaeError(f"{p}: a label map must be a single-channel image, got shape {a.shape}")
    if (a < 0).any():
        raise StaeError(f"{p}: negative labels")
    return torch.from_numpy(a.astype(np.int64))


def label_colors(n: int) -> np.ndarray:
    """(n, 3) uint8: the PASCAL VOC / DAVIS colour map (0 black, 1 dark red, 2 dark green, ...),
    which repeats its 256 colours for larger labels."""
    idx = np.arange(n) % 256
    cmap = np.zeros((n, 3), np.int64)
    lab = idx.copy()
    for shift in range(7, -1, -1):
        for c in range(3):
            cmap[:, c] |= ((lab >> c) & 1) << shift
        lab >>= 3
    return cmap.astype(np.uint8)


def write_label_png(path: Union[str, os.PathLike], labels: torch.Tensor) -> None:
    """Write an integer label map (H, W) as PNG: palette ("P", indices = labels, VOC colours)
    when all labels are < 256, else 16-bit gray. Reading it back with :func:`read_label_png`
    (or PIL: ``np.asarray(Image.open(path))``) gives the same integers."""
    from PIL import Image

    a = labels.detach().cpu().numpy()
    if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
        raise StaeError(f"{path}: labels must be in 0..65535 to be stored as PNG")
    if a.max(initial=0) < 256:
        im = Image.fromarray(a.astype(np.uint8), mode="P")
        im.putpalette(label_colors(256).reshape(-1).tolist())
    else:
        im = Image.fromarray(a.astype(np.uint16))
    im.save(path, format="PNG")


def overlay(frame: torch.Tensor, labels: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """Frame (C, H, W) in [0, 1] with the labels' VOC colours blended in (label 0 left clear)
    -> (H, W, 3) uint8."""
    from stae.viz import to_rgb_uint8

    img = to_rgb_uint8(frame).astype(np.float32)
    lab = labels.cpu().numpy()
    colors = label_colors(int(lab.max(initial=0)) + 1).astype(np.float32)
    fg = lab > 0
    img[fg] = (1 - alpha) * img[fg] + alpha * colors[lab[fg]]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# Propagation


def warp_labels(labels: torch.Tensor, flow: torch.Tensor, chunk: int = LABEL_CHUNK) -> torch.Tensor:
    """One propagation step: ``out(p) = labels(p + flow(p))`` for an integer map (H, W) and a
    backward flow (2, H, W) in image pixels, by bilinear one-hot vote and argmax (module doc).

    Only the labels present are warped, ``chunk`` at a time, so the cost does not depend on
    how large the label values are. Returns int64 (H, W).
    """
    if labels.dim() != 2 or flow.shape != (2, *labels.shape):
        raise ValueError(f"warp_labels expects labels (H, W) and flow (2, H, W); got {tuple(labels.shape)} "
                         f"and {tuple(flow.shape)}")
    values = torch.unique(labels)  # sorted: argmax ties go to the smaller label
    f = flow.unsqueeze(0).float()
    best = torch.zeros(labels.shape, dtype=torch.float32)
    out = torch.zeros(labels.shape, dtype=torch.int64)
    for i in range(0, len(values), chunk):
        vals = values[i:i + chunk]
        onehot = (labels.unsqueeze(0) == vals.view(-1, 1, 1)).float().unsqueeze(0)  # (1, k, H, W)
        vote = warp(onehot, f)[0]  # (k, H, W)
        v, j = vote.max(0)
        better = v > best  # strictly: an earlier (smaller) label keeps a tie
        best = torch.where(better, v, best)
        out = torch.where(better, vals[j], out)
    return out  # no vote at all (source outside the frame) -> 0


@dataclass
class Propagation:
    """Per-frame label maps of each method and, with ground truth, their IoU.

    ``labels[method][t]``: int64 (H, W) for frames t = 0..N-1 counted from the labelled frame
    (t = 0 is the given map; it is frame ``start`` of the video);
    ``iou[method][t]``: IoU with the true map of frame t (frames 1..N-1; NaN where neither
    map has a label other than 0).
    """

    start: int = 0

    frames: list[torch.Tensor] = field(default_factory=list)
    labels: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    truth: list[torch.Tensor] = field(default_factory=list)
    iou: dict[str, list[float]] = field(default_factory=dict)

    def mean_iou(self, method: str) -> float:
        vals = [v for v in self.iou.get(method, [])[1:] if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")


@torch.no_grad()
def propagate(model: Optional[SpatioTemporalAutoencoder], frames: Iterable[torch.Tensor], labels0: torch.Tensor,
              truth: Optional[Iterable[Optional[torch.Tensor]]] = None,
              methods: Sequence[str] = ("stae",), start: int = 0) -> Propagation:
    """Carry ``labels0`` (H, W) from frame ``start`` through ``frames`` (fitted (C, H, W), same
    size) with each method of ``methods`` ("stae": the model's flow, "dis": OpenCV DIS flow,
    "copy_first": no motion). ``truth``: true label maps per frame (the same length as
    ``frames``) for IoU. Frames are streamed through ``model.step``; the ``start`` frames before
    the labelled one only fill the model's memory (so that its first flow is not a guess from a
    single frame) and are not part of the result.
    """
    from stae.metrics import iou

    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown propagation method(s) {sorted(unknown)}; choose from {METHODS}")
    if "stae" in methods and model is None:
        raise ValueError("method 'stae' needs a model")
    if "dis" in methods:
        from stae.baselines import dis_backward_flow
    if start < 0:
        raise StaeError(f"the labelled frame must be >= 0, got {start}")
    res = Propagation(labels={m: [] for m in methods}, start=start)
    truth_it = iter(truth) if truth is not None else None
    frames = iter(frames)
    state = None
    seen = 0
    for frame in islice(frames, start):  # warm-up: the model sees the frames before the labelled one
        if model is not None and "stae" in methods:
            _, _, state = model.step(frame.unsqueeze(0), state)
        if truth_it is not None and next(truth_it, None) is None:
            raise StaeError(f"ground truth ends at frame {seen}, before the video does")
        seen += 1
    prev: Optional[torch.Tensor] = None
    flow_prev: Optional[torch.Tensor] = None  # T_{t-1}, image resolution
    for t, frame in enumerate(frames):
        if t == 0 and tuple(frame.shape[-2:]) != tuple(labels0.shape):
            raise StaeError(f"label map is {labels0.shape[1]}x{labels0.shape[0]} (WxH) but the frames are "
                            f"{frame.shape[-1]}x{frame.shape[-2]}")
        for m in methods:
            if t == 0:
                lab = labels0
            elif m == "stae":
                lab = warp_labels(res.labels[m][-1], flow_prev)
            elif m == "dis":
                lab = warp_labels(res.labels[m][-1], dis_backward_flow(frame.unsqueeze(0), prev.unsqueeze(0))[0])
            else:
                lab = labels0
            res.labels[m].append(lab)
        if model is not None and "stae" in methods:
            _, flow, state = model.step(frame.unsqueeze(0), state)
            flow_prev = upsample_flow(flow, model.stride)[0]
        res.frames.append(frame)
        prev = frame
        if truth_it is not None:
            true = next(truth_it, None)
            if true is None:
                raise StaeError(f"ground truth ends at frame {start + t}, before the video does")
            if tuple(true.shape) != tuple(labels0.shape):
                raise StaeError(f"true label map of frame {start + t} is {true.shape[-1]}x{true.shape[-2]} (WxH) but the "
                                f"frames are {labels0.shape[1]}x{labels0.shape[0]}")
            res.truth.append(true)
            for m in methods:
                res.iou.setdefault(m, []).append(iou(res.labels[m][-1], true))
    if truth_it is not None and next(truth_it, None) is not None:
        raise StaeError(f"more true label maps than the video's {start + len(res.frames)} frames")
    if not res.frames:
        raise StaeError("the video has no frames" if start == 0 else
                        f"cannot label frame {start}: the video has only {seen} frame(s)")
    return res


# --------------------------------------------------------------------------------------
# Inputs and the whole command


def labels_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Moving MNIST masks bool (T, K, H, W) (a partition of the digit pixels) -> labels int64
    (T, H, W): 0 background, k + 1 for digit k."""
    k = torch.arange(1, masks.shape[1] + 1, dtype=torch.int64).view(1, -1, 1, 1)
    return (masks.to(torch.int64) * k).sum(1)


def moving_mnist_sequence(index: int, split: str = "test", num_frames: int = 20, size: int = 64,
                          num_digits: int = 2, binary: bool = False, lines: bool = False
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence ``index`` of the default Moving MNIST ``split`` (its seed, embedded digits) with
    truth: (clip float (T, 1, H, W), labels int64 (T, H, W), one label per digit)."""
    from stae.data.moving_mnist import DEFAULT_SEEDS, MovingMNIST

    if index < 0:
        raise StaeError(f"--moving-mnist index must be >= 0, got {index}")
    ds = MovingMNIST(index + 1, DEFAULT_SEEDS.get(split, 0), split=split, num_digits=num_digits,
                     num_frames=num_frames, size=size, binary=binary, lines=lines, with_truth=True)
    item = ds[index]
    return item["clip"], labels_from_masks(item["masks"])


def clip_file_truth(path: Union[str, os.PathLike], index: int) -> Optional[torch.Tensor]:
    """True labels (T, H, W) of sequence ``index`` of a clip file saved with truth, else None."""
    from stae.data.files import ClipFileDataset

    ds = ClipFileDataset(path)
    if not ds.with_truth:
        return None
    if not -len(ds) <= index < len(ds):
        raise StaeError(f"{path}: --index {index} out of range ({len(ds)} sequence(s) in the file)")
    return labels_from_masks(ds[index]["masks"])


def mask_files(folder: Union[str, os.PathLike]) -> list[Path]:
    """The PNG label maps of a folder in natural order (``2.png`` before ``10.png``): one per frame."""
    d = Path(folder)
    if not d.is_dir():
        raise StaeError(f"--true-masks {d}: not a directory")
    files = sorted((f for f in d.iterdir() if f.suffix.lower() == ".png"), key=natural_key)
    if not files:
        raise StaeError(f"--true-masks {d}: no .png files")
    return files


PROPAGATE_OUTPUTS = ("labels", "overlays", "overlay.gif", "compare.gif", "propagate.json")


@dataclass
class _Sources:
    """What ``propagate_video`` reads: frames, the first labels and the truth (if any)."""

    source: str
    frames: Iterable[torch.Tensor]
    labels0: torch.Tensor
    labels_name: str
    truth_all: Optional[torch.Tensor] = None  # (T, H, W) at source size
    truth_files: Optional[list[Path]] = None

    @property
    def has_truth(self) -> bool:
        return self.truth_files is not None or self.truth_all is not None

    def truth(self, fit) -> Iterator[torch.Tensor]:
        """The true label maps, fitted like the frames."""
        if self.truth_files is None:
            yield from (fit.labels(lab) for lab in self.truth_all)  # type: ignore[union-attr]
            return
        for f in self.truth_files:
            lab = read_label_png(f)
            if tuple(lab.shape) != fit.source_hw:
                raise StaeError(f"true mask {f} is {lab.shape[1]}x{lab.shape[0]} (WxH) but the frames of "
                                f"{self.source} are {fit.source_hw[1]}x{fit.source_hw[0]}")
            yield fit.labels(lab)


def _sources(video, labels, index, true_masks, moving_mnist, mm_options, start: int) -> _Sources:
    """Frames, first labels and truth of a video + label PNG, or of a Moving MNIST sequence."""
    from stae.data.frames import open_frames

    if start < 0:
        raise StaeError(f"--start must be >= 0, got {start}")
    truth_all, truth_files = None, None
    if moving_mnist is not None:
        if true_masks is not None or index is not None:
            raise StaeError("--true-masks and --index do not apply to --moving-mnist (its masks are the truth)")
        clip, truth_all = moving_mnist_sequence(moving_mnist, **(mm_options or {}))
        frames: Iterable[torch.Tensor] = iter(clip)
        source = f"Moving MNIST {(mm_options or {}).get('split', 'test')} sequence {moving_mnist}"
    else:
        source, frames = str(video), open_frames(video, index)
        if Path(video).suffix.lower() == ".npz":
            truth_all = clip_file_truth(video, 0 if index is None else index)
        if true_masks is not None:
            truth_files = mask_files(true_masks)
            truth_all = None  # the user's masks take precedence over a file's stored truth
    if labels is not None:
        return _Sources(source, frames, read_label_png(labels), str(labels), truth_all, truth_files)
    if truth_all is None:
        raise StaeError(f"{source}: give the labels of frame {start} with --labels MASK.png")
    if start >= len(truth_all):
        raise StaeError(f"--start {start}: {source} has only {len(truth_all)} frames of true labels")
    return _Sources(source, frames, truth_all[start], f"the true labels of frame {start}", truth_all, truth_files)


def propagate_video(model: SpatioTemporalAutoencoder, out_dir: Union[str, os.PathLike], *,
                    video: Optional[Union[str, os.PathLike]] = None, labels: Optional[Union[str, os.PathLike]] = None,
                    index: Optional[int] = None, true_masks: Optional[Union[str, os.PathLike]] = None,
                    moving_mnist: Optional[int] = None, mm_options: Optional[dict] = None,
                    size: Optional[tuple[int, int]] = None, max_frames: Optional[int] = None,
                    fps: float = 5.0, scale: Optional[int] = None, force: bool = False, start: int = 0) -> dict:
    """Propagate a label map through a video with ``model`` and write into ``out_dir``:
    ``labels/labels_NNNNN.png`` (palette PNGs: pixel value = label), ``overlays/overlay_NNNNN.png``
    and ``overlay.gif`` (labels over the frames), ``propagate.json`` and, with ground truth,
    ``compare.gif`` (truth | stae | DIS | copy first) and the per-frame IoU of the three methods.

    Inputs: ``video`` (file, frame folder or clip file with ``index``) with ``labels`` (PNG of
    the first frame's labels; a clip file saved with truth supplies its own) and optionally
    ``true_masks`` (folder of PNGs, one per frame); or ``moving_mnist`` = a sequence index of
    the generated test set (``mm_options``: split, num_frames, size, num_digits, binary, lines),
    whose per-digit masks are the labels and the truth. ``start``: the labels are those of
    frame ``start`` (the given PNG, or the truth of that frame); the frames before it only fill
    the model's memory. Outputs are numbered by video frame.
    """
    from stae.data.frames import fitted_frames
    from stae.predict import OutputSet, check_panel_memory, check_video_options

    check_video_options(fps, scale, max_frames)
    if (video is None) == (moving_mnist is None):
        raise StaeError("give either a VIDEO (with --labels) or --moving-mnist INDEX")
    outputs = OutputSet(out_dir, PROPAGATE_OUTPUTS, force)  # refuses existing outputs before any work
    src = _sources(video, labels, index, true_masks, moving_mnist, mm_options, start)
    frames = src.frames if max_frames is None else islice(src.frames, max_frames)
    fit, fitted = fitted_frames(model, frames, size)
    if fit is None:
        raise StaeError(f"{src.source}: no frames")
    if tuple(src.labels0.shape) != fit.source_hw:
        raise StaeError(f"label map {src.labels_name} is {src.labels0.shape[1]}x{src.labels0.shape[0]} (WxH) but "
                        f"the frames of {src.source} are {fit.source_hw[1]}x{fit.source_hw[0]}")
    truth = src.truth(fit) if src.has_truth else None
    if truth is not None and max_frames is not None:
        truth = islice(truth, max_frames)
    methods = METHODS if src.has_truth else ("stae",)
    res = propagate(model, fitted, fit.labels(src.labels0), truth, methods, start=start)
    summary = _summary(res, src, fit, methods, start)
    scale = max(1, -(-128 // fit.size[0])) if scale is None else scale
    check_panel_memory(summary["frames"], len(methods) + 2, *fit.size, scale)
    with outputs:
        _write_outputs(outputs, res, methods if src.has_truth else None, start, scale, fps)
        outputs.path("propagate.json").write_text(json.dumps(summary, indent=2) + "\n")
        summary["written"] = [str(p) for p in outputs.commit()]
    return summary


def _summary(res, src: _Sources, fit, methods: Sequence[str], start: int) -> dict:
    """``propagate.json``: what was propagated how, and the IoU of each method where there is truth."""
    summary: dict = {
        "source": src.source,
        "labels": src.labels_name,
        "labelled_frame": start,
        "frames": start + len(res.frames),
        "frame_fit": fit.describe(),
        "size_hw": list(fit.size),
        "label_values": sorted(int(v) for v in torch.unique(res.labels["stae"][0])),
        "rule": ("labels_{t+1}(p) = labels_t(p + T_t(p)), T_t the backward flow upsampled to image resolution; "
                 "bilinear vote of one-hot maps, then argmax; sources outside the frame -> 0"),
        "iou_definition": ("stae.metrics.iou: region IoU (Jaccard) averaged over labels other than 0, frames "
                           "labelled_frame+1..N-1"),
    }
    if src.has_truth:
        def num(v: float) -> Optional[float]:  # JSON has no NaN: null where IoU is undefined
            return float(v) if np.isfinite(v) else None

        summary["mean_iou"] = {m: num(res.mean_iou(m)) for m in methods}
        summary["per_frame"] = [{"t": start + t, **{m: num(res.iou[m][t]) for m in methods}}
                                for t in range(len(res.frames))]
    return summary


def _write_outputs(outputs, res, methods: Optional[Sequence[str]], start: int, scale: int, fps: float) -> None:
    """Label PNGs, overlays and their GIF; with truth (``methods``), the comparison GIF."""
    from stae.viz import grid_image, save_png, write_gif

    overlays = []
    for t, (frame, lab) in enumerate(zip(res.frames, res.labels["stae"]), start):
        write_label_png(outputs.path(f"labels/labels_{t:05d}.png"), lab)
        ov = overlay(frame, lab)
        save_png(ov, outputs.path(f"overlays/overlay_{t:05d}.png"))
        overlays.append(grid_image([[ov]], col_labels=[f"t={t}"], scale=scale))
    write_gif(overlays, outputs.path("overlay.gif"), fps=fps)
    if methods is None:
        return
    names = {"stae": "stae", "dis": "DIS flow", "copy_first": "copy first"}
    panels = []
    for t, frame in enumerate(res.frames):
        cells = [overlay(frame, res.truth[t])] + [overlay(frame, res.labels[m][t]) for m in methods]
        cols = [f"truth t={start + t}"] + [f"{names[m]} {res.iou[m][t]:.2f}" if t else names[m] for m in methods]
        panels.append(grid_image([cells], col_labels=cols, scale=scale))
    write_gif(panels, outputs.path("compare.gif"), fps=fps)
