"""Next-frame prediction on a user's video with a trained model: ``stae predict``.

Frames are streamed one at a time through :meth:`SpatioTemporalAutoencoder.step` (the memory
state is carried from frame to frame), so a video of any length is never held as one tensor.

Flow conventions. The model's flow ``T_t`` (from the step on frame ``t``) is *backward* on
the feature grid: ``pred_{t+1}(p) ~ frame_t(p + T_t(p))`` (eq. 4). Pictures colour it through
:func:`stae.flowio.flow_to_color` (which shows forward motion); ``.flo`` files hold the
FORWARD flow from frame ``t`` to frame ``t+1`` at image resolution,
``backward_to_forward(upsample_flow(T_t, stride))`` (exact for locally constant motion, the
first-order approximation otherwise), because ``.flo`` is a forward-flow format.

Library entry points (frames come from :mod:`stae.data.frames`): :func:`predict_stream` (the
streaming loop, optional rollout horizon) and :func:`image_flow_forward` (the ``.flo``
convention). :class:`OutputSet` stages
outputs in a temporary folder and renames them into place, so existing files are never left
half-written and bad input never touches them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import deque
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from stae.errors import StaeError
from stae.model.autoencoder import SpatioTemporalAutoencoder
from stae.model.warp import backward_to_forward, upsample_flow

from stae.data.frames import fitted_frames, open_frames


# --------------------------------------------------------------------------------------
# The streaming loop


class PredictionStep(NamedTuple):
    """The step on observed frame ``t`` and its prediction of frame ``t + horizon``.

    ``frame``: frame t (C, H, W); ``target``: the true frame t + horizon (C, H, W), or None
    when the video ends before it; ``pred``: the predicted frame t + horizon (C, H, W);
    ``flow``: the backward flow (2, h, w) on the feature grid of the step that produced
    ``pred`` (for horizon 1 this is ``flow_t``); ``flow_t``: ``T_t``, the flow of the step
    on observed frame t (what ``.flo`` files store).
    """

    t: int
    frame: torch.Tensor
    target: Optional[torch.Tensor]
    pred: torch.Tensor
    flow: torch.Tensor
    flow_t: torch.Tensor


@torch.no_grad()
def predict_stream(model: SpatioTemporalAutoencoder, frames: Iterable[torch.Tensor],
                   horizon: int = 1, bf16: bool = False) -> Iterator[PredictionStep]:
    """Stream fitted frames (C, H, W) through ``model.step``; yield one :class:`PredictionStep`
    per observed frame, in order of t (each as soon as its target frame has arrived; the last
    ``horizon`` ones, which have no target, at the end).

    horizon K > 1: after the step on frame t, the prediction is fed back K - 1 times from a
    copy of the memory state (``model.step_ahead``), as :meth:`SpatioTemporalAutoencoder.rollout`
    does on the clip ``frames[:t+1]`` (the same numbers, without re-running the clip for every
    t). Only K pending predictions are held in memory.

    ``bf16``: each step runs under bfloat16 autocast (faster on CPUs with AVX512-BF16 or AMX,
    not exact: docs/performance.md); the yielded tensors are float32 either way.
    """
    if horizon < 1:
        raise StaeError(f"--horizon must be >= 1, got {horizon}")
    model.eval()
    state = None
    pending: deque[PredictionStep] = deque()
    for t, frame in enumerate(frames):
        # The frame arriving now is the truth for the prediction made K steps ago.
        if pending and pending[0].t + horizon == t:
            yield pending.popleft()._replace(target=frame)
        # autocast per step, not around the loop: a generator must not leave it on for its caller
        with torch.autocast(frame.device.type, dtype=torch.bfloat16, enabled=bf16):
            ahead, state = model.step_ahead(frame.unsqueeze(0), state, horizon)
        pending.append(PredictionStep(t, frame, None, ahead.frames[0, -1].float(), ahead.flows[0, -1].float(),
                                      ahead.flows[0, 0].float()))
    yield from pending


def image_flow_forward(flow: torch.Tensor, stride: int) -> torch.Tensor:
    """The model's backward feature-grid flow (2, h, w) -> FORWARD image-grid flow (2, H, W)
    in image pixels, the convention of ``.flo`` files (frame t -> t+1)."""
    return backward_to_forward(upsample_flow(flow.unsqueeze(0), stride))[0]


def flow_radius(flow: torch.Tensor, stride: int) -> float:
    """Largest flow magnitude of a feature-grid flow (2, h, w), in image pixels."""
    return float(torch.linalg.vector_norm(flow, dim=0).max()) * stride


def resolve_steps(steps: Sequence[int], n: int, context: int) -> list[int]:
    """Chosen time steps (negative: from the end) -> valid indices into ``n`` panels.

    Step t shows frames t-k+1..t, so it needs t >= context - 1.
    """
    out = []
    for s in steps:
        t = s + n if s < 0 else s
        if not 0 <= t < n:
            raise StaeError(f"--steps {s}: out of range, the video gives panels for t = 0..{n - 1}")
        if t < context - 1:
            raise StaeError(f"--steps {s}: the figure shows {context} input frames (t-{context - 1}..t), "
                            f"so t must be >= {context - 1} (or lower --context)")
        out.append(t)
    return out


def default_steps(n: int, context: int, rows: int = 3) -> list[int]:
    """``rows`` time steps spread evenly over the panels that have ``context`` frames before them."""
    lo = context - 1
    if n <= lo:
        return []
    return sorted(set(int(round(x)) for x in np.linspace(lo, n - 1, min(rows, n - lo))))


# --------------------------------------------------------------------------------------
# Pictures


def flow_picture(flow: torch.Tensor, stride: int, max_radius: float, legend: bool = True) -> np.ndarray:
    """A model flow (2, h, w) (backward, feature grid) as a colour picture (H, W, 3) uint8 at
    image resolution; ``max_radius`` in image pixels (one scale for a whole video)."""
    from stae.flowio import add_legend, flow_to_color

    img = flow_to_color(upsample_flow(flow.unsqueeze(0).float(), stride)[0], max_radius=max_radius,
                        convention="backward")
    return add_legend(img) if legend and min(img.shape[:2]) >= 24 else img


def prediction_figure(frames: Sequence[torch.Tensor], results: Sequence[PredictionStep], steps: Sequence[int],
                      context: int, horizon: int, stride: int, max_radius: float, scale: int = 1) -> np.ndarray:
    """The layout of the paper's Figs. 5 and 7, one row per chosen time step t: the last
    ``context`` observed frames (t-k+1 .. t), the true frame t+K, the predicted frame t+K and
    the predicted flow (colour wheel inset; one ``max_radius`` for all rows). With K = 1 this is
    :func:`stae.viz.paper_figure`'s layout; here the captions name the horizon K.

    ``frames[j]``: observed frame j (C, H, W); ``results[t]``: the step on frame t. Returns an
    (H', W', 3) uint8 image.
    """
    from stae.viz import grid_image, to_rgb_uint8

    rows = []
    for t in steps:
        r = results[t]
        if r.target is None or t < context - 1:
            raise StaeError(f"--steps: step {t} has no true frame t+{horizon} or fewer than {context} frames before it")
        row = [to_rgb_uint8(frames[j]) for j in range(t - context + 1, t + 1)]
        row += [to_rgb_uint8(r.target), to_rgb_uint8(r.pred), flow_picture(r.flow, stride, max_radius)]
        rows.append(row)
    cols = [("t" if j == context - 1 else f"t-{context - 1 - j}") for j in range(context)]
    cols += [f"t+{horizon}", f"pred t+{horizon}", "flow"]
    return grid_image(rows, col_labels=cols, row_labels=[f"t={t}" for t in steps], scale=scale)


# --------------------------------------------------------------------------------------
# Outputs


def check_video_options(fps: float, scale: Optional[int], max_frames: Optional[int]) -> None:
    """The options predict and propagate share: one error line for a bad value."""
    if fps <= 0:
        raise StaeError(f"--fps must be positive, got {fps}")
    if scale is not None and scale < 1:
        raise StaeError(f"--scale must be >= 1, got {scale}")
    if max_frames is not None and max_frames < 2:
        raise StaeError(f"--max-frames must be >= 2, got {max_frames}")


def check_panel_memory(frames: int, panels: int, h: int, w: int, scale: int) -> None:
    """Refuse a --scale whose magnified RGB panels (``frames`` rows of ``panels`` panels of
    ``h`` x ``w`` pixels) cannot be held in memory, before drawing them."""
    from stae.machine import require_memory

    require_memory(2.0 * frames * panels * 3 * (scale * h) * (scale * w),
                   f"--scale {scale}: {frames} frames of {panels} panels of {scale * w}x{scale * h} pixels")


def check_writable_dir(out_dir: Path, flag: str = "--out") -> None:
    """Refuse, before any work, an output folder that is a file or cannot be created or written
    (the nearest existing folder on its path decides)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise StaeError(f"{flag} {out_dir}: exists and is not a directory")
    base = out_dir.absolute()
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise StaeError(f"{flag} {out_dir}: {base} is a file, not a directory")
    try:  # a real write: permissions, read-only mounts and /proc all answer the same way
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as e:
        raise StaeError(f"{flag} {out_dir}: cannot write in {base} ({e.strerror or e})") from None


class OutputSet:
    """Files and folders written into ``out_dir`` only when complete.

    Everything is written under a hidden staging folder in ``out_dir``; :meth:`commit` renames
    each entry into place (an existing file is replaced atomically by ``os.replace``; an
    existing folder is moved aside and deleted only after the new one is in place; an output
    of ``names`` not produced this time is removed, so no stale file is left beside new
    ones). Without ``force`` any existing target is refused *before* work starts. On error the staging folder
    is removed and existing outputs are untouched.
    """

    def __init__(self, out_dir: Union[str, os.PathLike], names: Sequence[str], force: bool = False) -> None:
        self.out_dir = Path(out_dir)
        check_writable_dir(self.out_dir)
        self.names = list(names)
        existing = [n for n in self.names if (self.out_dir / n).exists()]
        if existing and not force:
            raise StaeError(f"{self.out_dir / existing[0]} already exists (use --force to overwrite)")
        self.stage: Optional[Path] = None

    def __enter__(self) -> "OutputSet":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(dir=self.out_dir, prefix=".stae-staging-"))
        return self

    def path(self, name: str) -> Path:
        """Where to write output ``name`` (or a file inside a folder output) while staging."""
        assert self.stage is not None, "use OutputSet as a context manager"
        p = self.stage / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def commit(self) -> list[Path]:
        """Move every staged output into ``out_dir``; returns the final paths written."""
        assert self.stage is not None
        done = []
        for name in self.names:
            src, dst = self.stage / name, self.out_dir / name
            if not src.exists():  # not produced this time: a stale one from an earlier run goes
                if dst.is_dir():
                    shutil.rmtree(dst)
                elif dst.exists():
                    dst.unlink()
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir() and dst.exists():
                old = self.stage / f".old-{len(done)}"
                os.replace(dst, old)
                os.replace(src, dst)
            else:
                os.replace(src, dst)
            done.append(dst)
        return done

    def __exit__(self, *exc) -> None:
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None


# --------------------------------------------------------------------------------------
# The whole command


PREDICT_OUTPUTS = ("predict.mp4", "predict.gif", "figure.png", "predict.json")
FLO_DIR = "flow"


def predict_video(model: SpatioTemporalAutoencoder, source: Union[str, os.PathLike], out_dir: Union[str, os.PathLike],
                  *, index: Optional[int] = None, size: Optional[tuple[int, int]] = None, horizon: int = 1,
                  steps: Optional[Sequence[int]] = None, context: Optional[int] = None,
                  max_flow: Optional[float] = None, flo: bool = False, fps: float = 10.0,
                  scale: Optional[int] = None, max_frames: Optional[int] = None, force: bool = False,
                  bf16: bool = False) -> dict:
    """Run ``model`` over ``source`` and write, into ``out_dir``: ``predict.mp4`` and
    ``predict.gif`` (panels input t | true t+K | predicted t+K | flow, one flow colour scale
    for the whole video), ``figure.png`` (Figs. 5/7 layout for ``steps``), ``predict.json``
    (sizes, flow scale, per-step squared error of the prediction and of copying frame t) and,
    with ``flo``, ``flow/flow_NNNNN.flo``: the FORWARD flow from frame N to N+1 at image
    resolution (one per observed frame; the last one predicts motion towards the unseen next
    frame). ``bf16``: stream under bfloat16 autocast (:func:`predict_stream`). Returns the
    summary written to ``predict.json``.
    """
    from itertools import islice

    from stae.metrics import l2

    if max_flow is not None and not (max_flow > 0 and np.isfinite(max_flow)):
        raise StaeError(f"--max-flow must be a positive number of pixels, got {max_flow}")
    check_video_options(fps, scale, max_frames)
    if context is not None and context < 1:
        raise StaeError(f"--context must be >= 1, got {context}")
    names = list(PREDICT_OUTPUTS) + ([FLO_DIR] if flo else [])
    outputs = OutputSet(out_dir, names, force)  # refuses existing outputs before any work

    frames = open_frames(source, index)
    if max_frames is not None:
        frames = islice(frames, max_frames)
    fit, fitted = fitted_frames(model, frames, size)
    if fit is None:
        raise StaeError(f"{source}: no frames")
    results = list(predict_stream(model, fitted, horizon, bf16))
    shown = [r for r in results if r.target is not None]
    if not shown:
        raise StaeError(f"{source}: {len(results)} frame(s); --horizon {horizon} needs at least {horizon + 1}")
    stride = model.stride
    radius = max_flow if max_flow is not None else max(flow_radius(r.flow, stride) for r in shown)
    radius = radius if radius > 0 else 1.0  # all-zero flow: any scale draws white
    k = min(5, len(shown)) if context is None else context
    chosen = default_steps(len(shown), k) if steps is None else resolve_steps(steps, len(shown), k)
    if not chosen:
        raise StaeError(f"--context {k}: the video gives only {len(shown)} step(s) to show; use --context {len(shown)} or less")
    h, w = fit.size
    scale = max(1, -(-128 // h)) if scale is None else scale  # frames at least 128 px tall by default
    check_panel_memory(len(shown), 4, h, w, scale)

    per_step = [{"t": r.t, "l2_pred": l2(r.pred, r.target), "l2_copy_last": l2(r.frame, r.target),
                 "max_flow_pixels": flow_radius(r.flow, stride)} for r in shown]
    summary = {
        "source": str(source),
        "index": index,
        "frames": len(results),
        "frame_fit": fit.describe(),
        "size_hw": [h, w],
        "channels": fit.channels,
        "horizon": horizon,
        "precision": "bf16 autocast" if bf16 else "float32",
        "max_flow_pixels": radius,
        "max_flow_source": "--max-flow" if max_flow is not None else "largest flow in the video",
        "figure_steps": chosen,
        "figure_context": k,
        "flo": ("flow/flow_NNNNN.flo: FORWARD flow from frame N to N+1, image pixels, "
                "-(model's backward flow upsampled to image resolution)") if flo else None,
        "mean_l2_pred": float(np.mean([s["l2_pred"] for s in per_step])),
        "mean_l2_copy_last": float(np.mean([s["l2_copy_last"] for s in per_step])),
        "steps": per_step,
    }
    with outputs:
        _write_outputs(outputs, results, shown, chosen, k, horizon, stride, radius, scale, fps, flo)
        outputs.path("predict.json").write_text(json.dumps(summary, indent=2) + "\n")
        summary["written"] = [str(p) for p in outputs.commit()]
    return summary


def _write_outputs(outputs: OutputSet, results: list[PredictionStep], shown: list[PredictionStep],
                   chosen: list[int], k: int, horizon: int, stride: int, radius: float, scale: int, fps: float,
                   flo: bool) -> None:
    """The MP4/GIF panels, the figure and (``flo``) the forward-flow files of ``predict_video``."""
    from stae.flowio import write_flo
    from stae.viz import panel_row, save_png, write_gif, write_mp4

    labels = ("input t", f"true t+{horizon}", f"pred t+{horizon}", "flow")
    panels = [panel_row(r.frame, r.target, r.pred, r.flow, convention="backward", max_radius=radius,
                        labels=labels, scale=scale) for r in shown]
    write_mp4(panels, outputs.path("predict.mp4"), fps=fps)
    write_gif(panels, outputs.path("predict.gif"), fps=fps)
    del panels
    frames_seen = [r.frame for r in results]
    save_png(prediction_figure(frames_seen, results, chosen, k, horizon, stride, radius, scale),
             outputs.path("figure.png"))
    if flo:
        for r in results:
            write_flo(outputs.path(f"{FLO_DIR}/flow_{r.t:05d}.flo"), image_flow_forward(r.flow_t, stride))
