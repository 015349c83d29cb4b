"""Label propagation along the model's flow (the paper's application: weakly supervised video
segmentation from one labelled frame): ``stae propagate``. docs/propagation.md has the
measurements behind every choice below.

Rule. A backward flow ``T`` from frame t+1 to frame t (``frame_{t+1}(p) ~ frame_t(p + T(p))``,
eq. 4) carries the labels the same way, ``labels_{t+1}(p) = labels_t(p + T(p))``;
:mod:`stae.label_warp` owns how (soft probabilities or hard votes, occlusion handling).

Where the model's flow comes from, the two *modes* (reported separately, never mixed):

* **predictive** -- ``T_t`` as the model predicts it at step t, *before* it sees frame t+1
  (what the paper's model gives), upsampled to image resolution. The frames before the
  labelled one may warm the memory (``start``).
* **observed** -- the model may use the frame it labels, as DIS does: its predicted flow,
  upsampled, is refined on the observed pair (:func:`stae.flow_refine.refine_flow`).

Baselines (as in the video-segmentation literature), carried by the same rule: copy the first
mask to every frame, and OpenCV DIS flow, ``dis_backward_flow(frame_{t+1}, frame_t)``
(backward, image resolution; it sees the frame it labels). Scores: region IoU (Jaccard),
:func:`stae.metrics.iou`, the mean over the labels other than 0.
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

from stae.data.video import natural_key
from stae.errors import StaeError
from stae.flow_refine import RefineOptions, refine_flow
from stae.label_maps import (from_probabilities, label_values, labels_from_masks, overlay, read_label_png,
                             to_probabilities, write_label_png)
from stae.label_warp import forward_backward_occlusion, warp_probabilities
from stae.machine import require_memory
from stae.model.autoencoder import SpatioTemporalAutoencoder
from stae.model.warp import upsample_flow

MODES = ("predictive", "observed")  # the model's two ways of giving a flow (module doc)
METHODS = MODES + ("dis", "copy_first")


# --------------------------------------------------------------------------------------
# Propagation


@dataclass(frozen=True)
class PropagationOptions:
    """How labels are carried (docs/propagation.md has the ablation these defaults come from).

    ``soft``: carry per-class probabilities, argmax only for output (else hard one-hot votes
    rebuilt every step); ``occlusion``: forward-backward check and guided filling for the
    methods that have a forward flow (observed, dis; the predictive flow has none);
    ``refine``: the observed mode's flow refinement.
    """

    soft: bool = True
    occlusion: bool = False
    refine: RefineOptions = RefineOptions()


class Propagator:
    """Carries a batch of label maps through a batch of videos, frame by frame, with each of
    ``methods`` (:data:`METHODS`) at once; one model stream serves both model modes.

    ``warm(frame)`` feeds a frame before the labelled one (memory only); ``first(frame)`` is
    the labelled frame; ``next(frame)`` carries the labels onto each following frame. Frames
    are (B, C, H, W); labels (B, H, W) int64. Each call returns {method: labels (B, H, W)}.
    """

    def __init__(self, model: Optional[SpatioTemporalAutoencoder], labels0: torch.Tensor, methods: Sequence[str],
                 options: PropagationOptions = PropagationOptions()):
        unknown = set(methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown propagation method(s) {sorted(unknown)}; choose from {METHODS}")
        self.uses_model = bool(set(methods) & set(MODES))
        if self.uses_model and model is None:
            raise ValueError(f"methods {sorted(set(methods) & set(MODES))} need a model")
        self.model, self.methods, self.options = model, tuple(methods), options
        self.values = label_values(labels0)
        require_memory(4 * len(self.values) * labels0.numel() * (len(methods) + 2), "label probability maps")
        self.labels0 = labels0
        self.carried: dict[str, torch.Tensor] = {}
        self.state = None
        self.predicted: Optional[torch.Tensor] = None  # the model's last flow at image resolution
        self.prev: Optional[torch.Tensor] = None

    def warm(self, frame: torch.Tensor) -> None:
        self._see(frame)

    def first(self, frame: torch.Tensor) -> dict[str, torch.Tensor]:
        start = to_probabilities(self.labels0, self.values)
        self.carried = {m: start for m in self.methods}
        self._see(frame)
        return {m: self.labels0 for m in self.methods}

    def next(self, frame: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for m in self.methods:
            if m == "copy_first":
                out[m] = self.labels0
                continue
            backward, forward = self._flows(m, frame)
            self.carried[m] = self._carry(self.carried[m], backward, forward, frame)
            out[m] = from_probabilities(self.carried[m], self.values)
        self._see(frame)
        return out

    def _see(self, frame: torch.Tensor) -> None:
        if self.uses_model:
            _, flow, self.state = self.model.step(frame, self.state)
            self.predicted = upsample_flow(flow, self.model.stride).float()
        self.prev = frame

    def _flows(self, method: str, frame: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(backward flow frame -> prev, forward flow prev -> frame or None) of ``method``."""
        want_forward = self.options.occlusion
        if method == "predictive":
            return self.predicted, None
        if method == "observed":
            ref = self.options.refine
            forward = refine_flow(self.prev, frame, -self.predicted, ref) if want_forward else None
            return refine_flow(frame, self.prev, self.predicted, ref), forward
        from stae.baselines import dis_backward_flow

        forward = dis_backward_flow(self.prev, frame) if want_forward else None
        return dis_backward_flow(frame, self.prev), forward

    def _carry(self, carried: torch.Tensor, backward: torch.Tensor, forward: Optional[torch.Tensor],
               frame: torch.Tensor) -> torch.Tensor:
        """One step of the class probabilities; hard labels are rounded back to one-hot maps
        (the bilinear vote of :func:`stae.label_warp.warp_labels`, argmax every step)."""
        occluded = None if forward is None else forward_backward_occlusion(backward, forward)
        probs = warp_probabilities(carried, backward, occluded, frame)
        return probs if self.options.soft else to_probabilities(from_probabilities(probs, self.values), self.values)


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
              methods: Sequence[str] = ("observed",), start: int = 0,
              options: PropagationOptions = PropagationOptions()) -> Propagation:
    """Carry ``labels0`` (H, W) from frame ``start`` through ``frames`` (fitted (C, H, W), same
    size) with each method of ``methods`` (:data:`METHODS`). ``truth``: true label maps per
    frame (the same length as ``frames``) for IoU. The ``start`` frames before the labelled one
    only fill the model's memory (so that its first flow is not a guess from a single frame)
    and are not part of the result.
    """
    if start < 0:
        raise StaeError(f"the labelled frame must be >= 0, got {start}")
    carrier = Propagator(model, labels0.unsqueeze(0), methods, options)
    res = Propagation(labels={m: [] for m in methods}, start=start)
    truth_it = iter(truth) if truth is not None else None
    frames = iter(frames)
    seen = 0
    for frame in islice(frames, start):  # warm-up: the model sees the frames before the labelled one
        carrier.warm(frame.unsqueeze(0))
        if truth_it is not None and next(truth_it, None) is None:
            raise StaeError(f"ground truth ends at frame {seen}, before the video does")
        seen += 1
    for t, frame in enumerate(frames):
        if t == 0 and tuple(frame.shape[-2:]) != tuple(labels0.shape):
            raise StaeError(f"label map is {labels0.shape[1]}x{labels0.shape[0]} (WxH) but the frames are "
                            f"{frame.shape[-1]}x{frame.shape[-2]}")
        step = carrier.first(frame.unsqueeze(0)) if t == 0 else carrier.next(frame.unsqueeze(0))
        for m in methods:
            res.labels[m].append(step[m][0])
        res.frames.append(frame)
        if truth_it is not None:
            _score(res, next(truth_it, None), start + t, labels0.shape)
    if truth_it is not None and next(truth_it, None) is not None:
        raise StaeError(f"more true label maps than the video's {start + len(res.frames)} frames")
    if not res.frames:
        raise StaeError("the video has no frames" if start == 0 else
                        f"cannot label frame {start}: the video has only {seen} frame(s)")
    return res


def _score(res: Propagation, true: Optional[torch.Tensor], frame: int, hw) -> None:
    """Append the true map of video frame ``frame`` and each method's IoU against it."""
    from stae.metrics import iou

    if true is None:
        raise StaeError(f"ground truth ends at frame {frame}, before the video does")
    if tuple(true.shape) != tuple(hw):
        raise StaeError(f"true label map of frame {frame} is {true.shape[-1]}x{true.shape[-2]} (WxH) but the "
                        f"frames are {hw[1]}x{hw[0]}")
    res.truth.append(true)
    for m in res.labels:
        res.iou.setdefault(m, []).append(iou(res.labels[m][-1], true))


# --------------------------------------------------------------------------------------
# Inputs and the whole command


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
            from stae.data.files import stored_labels

            truth_all = stored_labels(video, 0 if index is None else index)
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
                    fps: float = 5.0, scale: Optional[int] = None, force: bool = False, start: int = 0,
                    mode: str = "observed", options: PropagationOptions = PropagationOptions()) -> dict:
    """Propagate a label map through a video with ``model`` and write into ``out_dir``:
    ``labels/labels_NNNNN.png`` (palette PNGs: pixel value = label), ``overlays/overlay_NNNNN.png``
    and ``overlay.gif`` (labels over the frames), ``propagate.json`` and, with ground truth,
    ``compare.gif`` (truth | stae | DIS | copy first) and the per-frame IoU of the three methods.
    ``mode``: the model's flow, "predictive" or "observed" (:data:`MODES`); ``options``: how the
    labels are carried (the same for the model and for DIS).

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
    if mode not in MODES:
        raise StaeError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
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
    methods = (mode, "dis", "copy_first") if src.has_truth else (mode,)
    res = propagate(model, fitted, fit.labels(src.labels0), truth, methods, start=start, options=options)
    summary = _summary(res, src, fit, methods, start, options)
    scale = max(1, -(-128 // fit.size[0])) if scale is None else scale
    check_panel_memory(summary["frames"], len(methods) + 2, *fit.size, scale)
    with outputs:
        _write_outputs(outputs, res, methods if src.has_truth else None, start, scale, fps)
        outputs.path("propagate.json").write_text(json.dumps(summary, indent=2) + "\n")
        summary["written"] = [str(p) for p in outputs.commit()]
    return summary


def _summary(res, src: _Sources, fit, methods: Sequence[str], start: int, options: PropagationOptions) -> dict:
    """``propagate.json``: what was propagated how, and the IoU of each method where there is truth."""
    summary: dict = {
        "source": src.source,
        "labels": src.labels_name,
        "labelled_frame": start,
        "frames": start + len(res.frames),
        "frame_fit": fit.describe(),
        "size_hw": list(fit.size),
        "label_values": sorted(int(v) for v in torch.unique(res.labels[methods[0]][0])),
        "mode": methods[0],
        "rule": ("labels_{t+1}(p) = labels_t(p + T_t(p)), T_t the backward flow at image resolution: the model's "
                 "prediction (predictive) or refined on the observed pair (observed); "
                 + ("class probabilities warped and renormalised, argmax for output" if options.soft else
                    "bilinear vote of one-hot maps, then argmax")
                 + ("; forward-backward occlusion check, occluded pixels filled from alike neighbours"
                    if options.occlusion else "") + "; sources outside the frame -> 0"),
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
    for t, (frame, lab) in enumerate(zip(res.frames, next(iter(res.labels.values()))), start):
        write_label_png(outputs.path(f"labels/labels_{t:05d}.png"), lab)
        ov = overlay(frame, lab)
        save_png(ov, outputs.path(f"overlays/overlay_{t:05d}.png"))
        overlays.append(grid_image([[ov]], col_labels=[f"t={t}"], scale=scale))
    write_gif(overlays, outputs.path("overlay.gif"), fps=fps)
    if methods is None:
        return
    names = {"predictive": "stae predictive", "observed": "stae observed", "dis": "DIS flow", "copy_first": "copy first"}
    panels = []
    for t, frame in enumerate(res.frames):
        cells = [overlay(frame, res.truth[t])] + [overlay(frame, res.labels[m][t]) for m in methods]
        cols = [f"truth t={start + t}"] + [f"{names[m]} {res.iou[m][t]:.2f}" if t else names[m] for m in methods]
        panels.append(grid_image([cells], col_labels=cols, scale=scale))
    write_gif(panels, outputs.path("compare.gif"), fps=fps)
