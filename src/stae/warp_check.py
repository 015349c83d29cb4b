"""The paper's sanity check of the grid generator and sampler (Sec. 4,
Fig. 3) — warp a frame with the *true* flow through the model's own ``warp`` (GG + S, eq. 4)
at image resolution and measure the mean per-pixel absolute error (pixels in [0, 1]; the
paper reports 0.004 on Sintel).

Conventions. A ``.flo`` file holds the FORWARD flow ``F`` from FRAME (t) to NEXT (t+1),
defined on FRAME's pixels: ``NEXT(p + F(p)) = FRAME(p)`` where p is visible in both. The
model's sampler is a backward warp, ``warp(x, T)(p) = x(p + T(p))``. Hence:

* ``mode="reconstruct"`` (default, exact for the convention): ``warp(NEXT, F)`` evaluated at
  FRAME's pixel p is ``NEXT(p + F(p)) = FRAME(p)``; the target is FRAME. The only errors are
  bilinear interpolation, occlusions and brightness changes — what the check is meant to
  expose. This is the standard way to check a forward flow with a backward sampler.
* ``mode="predict"`` (the paper's wording, "generate the next frame given the current frame"):
  ``warp(FRAME, -F)`` approximates NEXT, taking ``T(q) = -F(q)`` on NEXT's grid. That is
  exact only for locally constant flow (``-F`` is sampled at q instead of at q - F), so it
  adds a first-order error where the flow varies.

Pixels whose flow is unknown (NaN in the file) or whose sample position falls outside the
image are "invalid": ``mean_abs_error`` is over valid pixels, ``mean_abs_error_all_pixels``
over every pixel (invalid samples read zeros, as the model's sampler does).

``stae warp-check`` (:mod:`stae.commands.warp_check`) is the command line of :func:`warp_check`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from stae.errors import StaeError
from stae.flowio import read_flo
from stae.model.warp import warp
from stae.data.video import IMAGE_SUFFIXES
from stae.paper import PAPER_SINTEL_ERROR
from stae.viz import save_png, warp_figure

__all__ = ["PAPER_SINTEL_ERROR", "MODES", "load_image", "warp_with_true_flow", "load_pair", "folder_pairs",
           "warp_check"]

MODES = ("reconstruct", "predict")
_DEFINITIONS = {
    "reconstruct": "reconstruct: sampled = warp(NEXT, F), target = FRAME (exact for forward flow F)",
    "predict": "predict: sampled = warp(FRAME, -F), target = NEXT (first-order: T(q) ~ -F(q))",
}
_FIGURE_LABELS = {
    "reconstruct": ("NEXT (input)", "flow F (t->t+1)", "FRAME (target)", "warp(NEXT, F)"),
    "predict": ("FRAME (input)", "flow F (t->t+1)", "NEXT (target)", "warp(FRAME, -F)"),
}
JSON_NAME, FIGURE_NAME = "warp_check.json", "warp_check.png"


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise StaeError(f"mode must be 'reconstruct' or 'predict', got {mode!r}")


def load_image(path: str | Path) -> torch.Tensor:
    """An image file -> float32 (C, H, W) in [0, 1]; C = 1 for gray (8/16-bit), else 3 (RGB)."""
    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("I;16", "I;16L", "I;16B", "I"):
                a = np.asarray(im, dtype=np.float64) / 65535.0
            elif im.mode in ("L", "LA", "1"):
                a = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
            else:
                a = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    except UnidentifiedImageError:
        raise StaeError(f"{p}: not an image file PIL can read") from None
    t = torch.from_numpy(np.clip(a, 0.0, 1.0).astype(np.float32))
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def warp_with_true_flow(
    frame: torch.Tensor, flow: torch.Tensor, next_frame: torch.Tensor, mode: str = "reconstruct"
) -> dict:
    """Run the check on one pair. ``frame``/``next_frame`` (C, H, W) in [0, 1]; ``flow`` (2, H, W)
    FORWARD from frame to next_frame in pixels (NaN = unknown).

    Returns a dict with ``sampler_input``, ``target``, ``sampled`` (C, H, W), ``valid`` (H, W)
    bool and the numbers ``mean_abs_error`` (valid pixels), ``mean_abs_error_all_pixels``,
    ``valid_fraction``. See the module docstring for the two modes.
    """
    _check_mode(mode)
    _, h, w = frame.shape
    known = torch.isfinite(flow).all(dim=0)  # (H, W)
    f = torch.where(known, flow, torch.zeros_like(flow))
    if mode == "reconstruct":
        src, target, t = next_frame, frame, f  # NEXT(p + F(p)) = FRAME(p): exact
    else:
        src, target, t = frame, next_frame, -f  # T(q) ~ -F(q): first-order backward flow on NEXT
    sampled = warp(src.unsqueeze(0), t.unsqueeze(0))[0]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=t.dtype), torch.arange(w, dtype=t.dtype), indexing="ij")
    sx, sy = xs + t[0], ys + t[1]
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    valid = known & inside
    err = (sampled - target).abs()  # (C, H, W)
    n_valid = int(valid.sum())
    return {
        "sampler_input": src,
        "target": target,
        "sampled": sampled,
        "valid": valid,
        "mean_abs_error": float(err[:, valid].mean()) if n_valid else float("nan"),
        "mean_abs_error_all_pixels": float(err.mean()),
        "valid_fraction": n_valid / (h * w),
    }


def load_pair(frame_path: Path, flow_path: Path, next_path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FRAME (C, H, W), its forward flow (2, H, W) and NEXT (C, H, W) from their files; a gray and a
    colour image are both compared in colour. Sizes that differ are an error naming the files."""
    frame, nxt = load_image(frame_path), load_image(next_path)
    flow_hw2 = read_flo(flow_path)
    if frame.shape[1:] != nxt.shape[1:]:
        raise StaeError(
            f"{frame_path} is {frame.shape[2]}x{frame.shape[1]} but {next_path} is {nxt.shape[2]}x{nxt.shape[1]} (WxH)"
        )
    fh, fw = flow_hw2.shape[:2]
    if (fh, fw) != tuple(frame.shape[1:]):
        raise StaeError(
            f"{flow_path} is {fw}x{fh} but {frame_path} is {frame.shape[2]}x{frame.shape[1]} (WxH): "
            "the flow must be at image resolution"
        )
    if frame.shape[0] != nxt.shape[0]:  # one gray, one colour: compare in colour
        frame, nxt = frame.expand(3, -1, -1), nxt.expand(3, -1, -1)
    return frame, torch.from_numpy(flow_hw2).permute(2, 0, 1).contiguous(), nxt


def _find_image(folder: Path, stem: str) -> Path | None:
    for suf in IMAGE_SUFFIXES:
        p = folder / f"{stem}{suf}"
        if p.is_file():
            return p
    return None


def folder_pairs(folder: Path, flow_dir: Path) -> list[tuple[Path, Path, Path]]:
    """The (frame, flow, next) triples of a folder in Sintel's layout: flow ``<prefix>NNNN.flo``
    in ``flow_dir`` goes from frame ``<prefix>NNNN`` to ``<prefix>NNNN+1`` in ``folder``."""
    if not folder.is_dir():
        raise StaeError(f"folder {folder}: not a directory")
    if not flow_dir.is_dir():
        raise StaeError(f"flow_dir {flow_dir}: not a directory")
    flos = sorted(flow_dir.glob("*.flo"))
    if not flos:
        raise StaeError(f"{flow_dir}: no .flo files")
    pairs = []
    for flo in flos:
        m = re.fullmatch(r"(.*?)(\d+)", flo.stem)
        if m is None:
            raise StaeError(f"{flo}: name does not end in a frame number (expected e.g. frame_0001.flo)")
        prefix, digits = m.groups()
        nxt_stem = f"{prefix}{int(digits) + 1:0{len(digits)}d}"
        frame, nxt = _find_image(folder, flo.stem), _find_image(folder, nxt_stem)
        if frame is None or nxt is None:
            missing = flo.stem if frame is None else nxt_stem
            raise StaeError(f"{flo}: no image {folder / missing}.png (or .jpg, ...) for this flow")
        pairs.append((frame, flo, nxt))
    return pairs


def warp_check(pairs: Sequence[tuple[Path, Path, Path]], out: str | Path, mode: str = "reconstruct",
               max_radius: Optional[float] = None, force: bool = False) -> dict[str, Any]:
    """Run the check on every (FRAME, FLOW, NEXT) file triple, then write ``out/warp_check.json``
    (the summary returned here: means over the pairs, one record per pair) and
    ``out/warp_check.png`` (the first pair, Fig. 3-style; flow colours at full strength at
    ``max_radius`` pixels, default the flow's maximum). Everything is computed before anything
    is written: bad input leaves ``out`` untouched, and existing outputs are refused unless ``force``."""
    from stae.predict import OutputSet

    _check_mode(mode)
    outputs = OutputSet(out, [JSON_NAME, FIGURE_NAME], force)  # refuses before any work
    if not pairs:
        raise StaeError("pairs: give at least one (frame, flow, next) triple")
    if max_radius is not None and not max_radius > 0:
        raise StaeError(f"max_radius must be positive, got {max_radius}")
    records, first = [], None
    for frame_path, flow_path, next_path in pairs:
        frame, flow, nxt = load_pair(Path(frame_path), Path(flow_path), Path(next_path))
        r = warp_with_true_flow(frame, flow, nxt, mode)
        first = first or (flow, r)
        records.append({
            "frame": str(frame_path), "flow": str(flow_path), "next": str(next_path),
            "size_wh": [int(frame.shape[2]), int(frame.shape[1])],
            "max_flow_pixels": float(torch.nan_to_num(torch.linalg.vector_norm(flow, dim=0), nan=0.0).max()),
            **{k: r[k] for k in ("mean_abs_error", "mean_abs_error_all_pixels", "valid_fraction")},
        })
    summary = {
        "mode": mode, "definition": _DEFINITIONS[mode], "pixel_range": [0.0, 1.0], "num_pairs": len(records),
        **{k: _finite_mean([x[k] for x in records])
           for k in ("mean_abs_error", "mean_abs_error_all_pixels", "valid_fraction")},
        "paper_sintel_mean_abs_error": PAPER_SINTEL_ERROR,
        "pairs": records,
    }
    with outputs:
        _write(outputs, summary, *first, max_radius)
        outputs.commit()
    return summary


def _finite_mean(vals: list[float]) -> float:
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _write(outputs, summary: dict[str, Any], flow: torch.Tensor, r: dict[str, Any],
           max_radius: Optional[float]) -> None:
    """The figure and the JSON into the staging folder of ``outputs`` (a predict.OutputSet)."""
    fig = warp_figure(r["sampler_input"], flow, r["target"], r["sampled"], convention="forward",
                      max_radius=max_radius, labels=_FIGURE_LABELS[summary["mode"]])
    save_png(fig, outputs.path(FIGURE_NAME))
    outputs.path(JSON_NAME).write_text(json.dumps(summary, indent=2) + "\n")
