"""Evaluation: the model and two classical baselines on the same frames -> JSON.

Protocols (``mode``):

* ``next`` (default, the paper's): from each clip, feed frames 0..tau-1 (tau = ``context``,
  10) from an empty memory and predict frame tau. Baselines on the same frames: ``copy_last``
  (frame tau-1) and ``dis`` (frame tau-1 warped by OpenCV DIS flow between frames tau-1 and
  tau-2, a constant-velocity guess; :func:`stae.baselines.dis_extrapolate`).
* ``rollout`` (OpenSTL's Moving MNIST protocol): feed 10 frames, predict the next ``horizon``
  (10) by feeding predictions back (:meth:`~stae.model.autoencoder.SpatioTemporalAutoencoder.rollout`);
  copy_last repeats frame tau-1; dis re-estimates DIS flow between its own last two frames.

Metrics (:mod:`stae.metrics`; formulas in docs/metrics.md), averaged over every predicted
frame: per-pixel BCE in nats (binary data only, Table 2's metric; the model's probabilities, the
baselines' pixel values clamped to [1e-7, 1 - 1e-7]), per-pixel L2 (Table 3), image-gradient
L2, PSNR, stae's Gaussian-window SSIM (``ssim``), and OpenSTL's MSE / MAE summed over a frame's
pixels, on the unclipped predictions. ``rollout`` mode adds the benchmarks' own definitions:
OpenSTL's SSIM and PSNR (``ssim_openstl``, ``psnr_openstl``: predictions clipped to [0, 1]) and
Video Pixel Networks' nats per frame (``vpn_nats_per_frame``: BCE summed over a frame's pixels,
against the intensities, i.e. expected over a stochastic binarisation) -- the latter only where
the scores are probabilities: on binary data, or from a model with a sigmoid output.

Flow end-point error (``next`` mode, when the data carries true flow): all flows in the
model's BACKWARD convention -- the flow living on frame tau that points into frame tau-1,
``frame_tau(p) = frame_{tau-1}(p + T(p))`` -- in image pixels. The model's last flow T_{tau-1}
is upsampled from the feature grid with :func:`stae.model.warp.upsample_flow`; the DIS
baseline's flow is its constant-velocity guess (the backward flow between frames tau-1 and
tau-2); copy_last is zero flow. Averaged over the digit pixels of frame tau (the true flow is
defined there; background has no motion to find).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence

import torch
from torch.utils.data import Dataset

from stae import metrics as M
from stae.baselines import copy_last, dis_extrapolate
from stae.errors import StaeError
from stae.model.warp import upsample_flow

METHODS = ("model", "copy_last", "dis")
# Bumped whenever a metric's definition changes, and written into every report, so that a saved
# report (e.g. scripts/reproduce.py's cache) can tell it is from an older definition.
# 2: VPN's nats per frame against the frames' intensities (2026-12-08; 1: thresholded at 0.5).
METRICS_VERSION = 2
METRIC_NAMES = ("bce", "vpn_nats_per_frame", "l2", "gradient_l2", "psnr", "ssim", "mse_per_frame", "mae_per_frame",
                "ssim_openstl", "psnr_openstl", "epe")
FLOW_CONVENTION = ("backward: frame_tau(p) = frame_{tau-1}(p + T(p)), image pixels, channel 0 = x; "
                   "model flow upsampled from the feature grid (stae.model.warp.upsample_flow)")


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


class _Mean:
    """Weighted running means of named values."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, name: str, value: float, weight: float) -> None:
        if weight <= 0 or math.isnan(value):  # +inf (OpenSTL's PSNR of a perfect frame) is kept
            return
        self.sums[name] = self.sums.get(name, 0.0) + value * weight
        self.weights[name] = self.weights.get(name, 0.0) + weight

    def result(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] for k in self.sums}


def frame_metrics(pred: torch.Tensor, target: torch.Tensor, prob: Optional[torch.Tensor], binary: bool,
                  benchmarks: bool = False, vpn: bool = False) -> dict[str, float]:
    """Image metrics of predicted frames (..., C, H, W) against the truth. ``pred`` is clipped to
    [0, 1]; ``prob`` is the unclipped output (None: ``pred``), what BCE and OpenSTL's MSE / MAE
    score. ``benchmarks`` adds OpenSTL's SSIM / PSNR; ``vpn`` adds VPN's nats per frame."""
    raw = pred if prob is None else prob
    out = {
        "l2": M.l2(pred, target), "gradient_l2": M.gradient_l2(pred, target), "psnr": M.psnr(pred, target),
        "ssim": M.ssim(pred, target), "mse_per_frame": M.mse_per_frame(raw, target),
        "mae_per_frame": M.mae_per_frame(raw, target),
    }
    if binary:
        out["bce"] = M.bce(raw, target)
    if benchmarks:
        out["ssim_openstl"] = M.openstl_ssim(pred, target)
        out["psnr_openstl"] = M.openstl_psnr(pred, target)
    if vpn:
        out["vpn_nats_per_frame"] = M.vpn_nats_per_frame(raw, target)
    return out


def _batches(ds: Dataset, batch_size: int, limit: Optional[int]) -> Iterable[list[dict[str, torch.Tensor]]]:
    from stae.training.batches import fetch

    n = len(ds) if limit is None else min(limit, len(ds))
    for s in range(0, n, batch_size):
        yield fetch(ds, range(s, min(n, s + batch_size)))


@torch.no_grad()
def evaluate(model, dataset: Dataset, context: int = 10, mode: str = "next", horizon: int = 10,
             batch_size: int = 8, limit: Optional[int] = None, baselines: Sequence[str] = ("copy_last", "dis"),
             binary: Optional[bool] = None, device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Metrics of ``model`` and the baselines on ``dataset`` (items {"clip": (T, C, H, W)[, "flow", "masks"]}).

    Returns {"protocol": {...}, "results": {method: {metric: value}}}; see the module docstring.
    ``binary=None`` detects binary data (every pixel 0 or 1) on the first batch.
    """
    if mode not in ("next", "rollout"):
        raise StaeError(f"mode must be 'next' or 'rollout', got {mode!r}")
    if context < 2 and "dis" in baselines:
        raise StaeError("the DIS baseline needs a context of at least 2 frames")
    need = context + (1 if mode == "next" else horizon)
    if len(dataset) == 0:
        raise StaeError("the evaluation dataset is empty")
    model = model.to(device).eval()
    methods = ["model", *baselines]
    means = {m: _Mean() for m in methods}
    n_clips, has_flow = 0, False
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(dataset) if limit is None else min(limit, len(dataset)), unit="clip", desc="evaluate")
    for items in _batches(dataset, batch_size, limit):
        clip = torch.stack([it["clip"] for it in items]).float()
        if clip.shape[1] < need:
            raise StaeError(f"clips of {clip.shape[1]} frames are too short for {mode} evaluation with context "
                            f"{context}" + (f" and horizon {horizon}" if mode == "rollout" else "") + f" (need {need})")
        if binary is None:
            binary = _is_binary(clip)
        if mode == "next":
            target, preds, flows = _next_frame(model, clip, context, baselines, device)
            truth = _true_flow(items, context)
            has_flow = has_flow or truth is not None
        else:
            target, preds = _rollout(model, clip, context, horizon, baselines, device)
            truth = None
        b = clip.shape[0]
        rollout = mode == "rollout"
        vpn = rollout and (binary or getattr(getattr(model, "config", None), "output", "linear") == "sigmoid")
        for m, (pred, prob) in preds.items():
            for k, v in frame_metrics(pred, target, prob, binary, benchmarks=rollout, vpn=vpn).items():
                means[m].add(k, v, b)
            if truth is not None:
                truth_flow, digit = truth
                means[m].add("epe", M.epe(flows[m], truth_flow, digit), float(digit.sum()))
        n_clips += b
        if bar is not None:
            bar.update(b)
    if bar is not None:
        bar.close()
    results = {m: {k: means[m].result()[k] for k in METRIC_NAMES if k in means[m].result()} for m in methods}
    return {"protocol": _protocol(mode, context, horizon, n_clips, bool(binary), has_flow), "results": results}


def _protocol(mode: str, context: int, horizon: int, n_clips: int, binary: bool, has_flow: bool) -> dict[str, Any]:
    protocol = {
        "mode": mode, "context": context, "clips": n_clips, "metrics_version": METRICS_VERSION,
        "predicted_frames": n_clips * (1 if mode == "next" else horizon),
        "frames": (f"feed frames 0..{context - 1}, predict frame {context}" if mode == "next" else
                   f"feed frames 0..{context - 1}, predict frames {context}..{context + horizon - 1} by rollout"),
        "binary": binary,
        "metrics": "per-frame means; bce/l2/gradient_l2 per pixel; mse/mae_per_frame summed over a frame's pixels (OpenSTL, "
                   "unclipped); ssim: Gaussian window; *_openstl and vpn_nats_per_frame: the benchmarks' definitions "
                   "(docs/metrics.md)",
    }
    if mode == "rollout":
        protocol["horizon"] = horizon
    if has_flow:
        protocol["flow_convention"] = FLOW_CONVENTION
        protocol["epe_pixels"] = "digit pixels of the predicted frame"
    return protocol


def _next_frame(model, clip: torch.Tensor, context: int, baselines: Sequence[str], device: str):
    """Target frame ``context``; {method: (prediction, probabilities or None)}; {method: image-grid flow}."""
    ctx = clip[:, :context]
    out = model(ctx.to(device))
    pred_prob = out.frames[:, -1].float().cpu()
    preds = {"model": (pred_prob.clamp(0, 1), pred_prob)}
    flows = {"model": upsample_flow(out.flows[:, -1].float().cpu(), model.stride)}
    if "copy_last" in baselines:
        preds["copy_last"] = (copy_last(ctx), None)
        flows["copy_last"] = torch.zeros_like(flows["model"])
    if "dis" in baselines:
        p, f = dis_extrapolate(ctx)
        preds["dis"] = (p, None)
        flows["dis"] = f
    return clip[:, context], preds, flows


def _true_flow(items: list[dict[str, torch.Tensor]], context: int):
    """(true backward flow living on frame ``context``, digit pixels of that frame), or None."""
    if "flow" not in items[0] or "masks" not in items[0]:
        return None
    truth_flow = torch.stack([it["flow"][context - 1] for it in items])
    digit = torch.stack([it["masks"][context].any(0) for it in items])  # (B, H, W)
    return truth_flow, digit


def _rollout(model, clip: torch.Tensor, context: int, horizon: int, baselines: Sequence[str], device: str):
    """Targets frames context..context+horizon-1; {method: (predictions, probabilities or None)}."""
    ctx = clip[:, :context]
    target = clip[:, context:context + horizon]  # (B, K, C, H, W)
    pred_prob = model.rollout(ctx.to(device), horizon).frames.float().cpu()
    preds = {"model": (pred_prob.clamp(0, 1), pred_prob)}
    if "copy_last" in baselines:
        preds["copy_last"] = (ctx[:, -1:].expand_as(target), None)
    if "dis" in baselines:
        seq = [ctx[:, -2], ctx[:, -1]]
        for _ in range(horizon):
            seq.append(dis_extrapolate(torch.stack(seq[-2:], 1))[0])
        preds["dis"] = (torch.stack(seq[2:], 1), None)
    return target, preds


def format_table(report: dict[str, Any]) -> str:
    """The results as a plain-text table: one row per metric, one column per method."""
    res = report["results"]
    methods = list(res)
    names = [k for k in METRIC_NAMES if any(k in res[m] for m in methods)]
    lower_better = {"psnr": False, "ssim": False, "ssim_openstl": False, "psnr_openstl": False}
    label = {k: k + (" ^" if not lower_better.get(k, True) else "") for k in names}
    w = max([15] + [len(v) + 1 for v in label.values()])
    head = f"{'metric':<{w}}" + "".join(f"{m:>14}" for m in methods)
    lines = [head, "-" * len(head)]
    for k in names:
        row = f"{label[k]:<{w}}"
        for m in methods:
            v = res[m].get(k)
            row += f"{v:>14.5g}" if v is not None else f"{'-':>14}"
        lines.append(row)
    lines.append("(^ higher is better; all others lower is better)")
    if "ssim_openstl" in names:
        lines.append("(ssim: Gaussian window, stae's; *_openstl: OpenSTL's definitions; vpn_nats_per_frame: Video "
                     "Pixel Networks'; see docs/metrics.md)")
    return "\n".join(lines)
