"""Pictures and videos: figure grids like the paper's Figs. 3, 5 and 7, panel GIF/MP4 writers,
and training curves.

Images here are uint8 RGB numpy arrays (H, W, 3). Inputs may be torch tensors in the
package's channel-first layout — a frame (C, H, W), a clip (N, k, C, H, W), a flow
(N, 2, h, w) — or numpy arrays: a single numpy image is (H, W), (H, W, 1) or (H, W, 3).
Float values are taken in [0, 1] (clipped); 1-channel frames are drawn gray, 3-channel RGB.

Flow panels are coloured with :func:`stae.flowio.flow_to_color` (Middlebury wheel, legend
inset top-right). The model's flow is backward; functions that draw model output take
``convention="backward"`` and leave the conversion to ``flow_to_color``. A flow on a coarser
grid than the frames (the model's feature grid) is first mapped to image pixels with
:func:`stae.model.warp.upsample_flow`, so ``max_radius`` is always in image pixels.

Grids are composed with PIL (exact pixel sizes: see :func:`grid_image`); curves use
matplotlib's Agg canvas (no display, no pyplot global state).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from stae.flowio import add_legend, flow_to_color
from stae.model.warp import upsample_flow

__all__ = [
    "grid_image",
    "panel_row",
    "paper_figure",
    "plot_curves",
    "save_png",
    "to_rgb_uint8",
    "warp_figure",
    "write_gif",
    "write_mp4",
]

_FONT = ImageFont.load_default()
LABEL_HEIGHT = 14  # pixels of the caption strip above each column


# --------------------------------------------------------------------------------------
# Conversions


def to_rgb_uint8(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """One frame -> (H, W, 3) uint8. torch: (C, H, W) or (H, W); numpy: (H, W), (H, W, 1|3).

    Floats are read as [0, 1] and clipped; uint8 is kept as is; 1 channel -> gray.
    """
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.dim() == 3:
            t = t.permute(1, 2, 0)
        a = t.numpy()
    else:
        a = np.asarray(img)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise ValueError(
            f"a frame must be torch (C, H, W) / numpy (H, W, C) with C in (1, 3); got shape {tuple(img.shape)}"
        )
    if a.dtype != np.uint8:
        a = np.floor(np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a)


def _flow_panel(
    flow: torch.Tensor | np.ndarray,
    size: tuple[int, int],
    convention: str,
    max_radius: float | None,
    legend: bool,
) -> np.ndarray:
    """Flow (2, h, w) tensor -> coloured (H, W, 3) at frame size ``size`` = (H, W)."""
    f = torch.as_tensor(flow, dtype=torch.float32)
    if f.dim() == 3:
        f = f.unsqueeze(0)
    if f.dim() != 4 or f.shape[:2] != (1, 2):
        raise ValueError(f"a flow panel needs a (2, h, w) flow; got {tuple(f.shape)}")
    h, w = f.shape[-2:]
    H, W = size
    if (h, w) != (H, W):
        if H % h or W % w or H // h != W // w:
            raise ValueError(f"flow grid {h}x{w} is not an integer downscaling of the frame size {H}x{W}")
        f = upsample_flow(f, H // h)
    img = flow_to_color(f, max_radius=max_radius, convention=convention)
    return add_legend(img) if legend and min(H, W) >= 24 else img


def _max_radius(flows: torch.Tensor, frame_size: tuple[int, int]) -> float | None:
    """Largest known magnitude of a batch of flows (N, 2, h, w) as drawn (mapped to image
    pixels like :func:`_flow_panel`): one shared colour scale for a figure."""
    f = torch.as_tensor(flows, dtype=torch.float32)
    if f.shape[-1] != frame_size[1]:
        f = upsample_flow(f, frame_size[1] // f.shape[-1])
    rad = torch.linalg.vector_norm(f, dim=-3)
    rad = rad[torch.isfinite(rad)]
    return float(rad.max()) if rad.numel() and float(rad.max()) > 0 else None


# --------------------------------------------------------------------------------------
# Grids


def _text_width(text: str) -> int:
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=_FONT)
    return int(box[2] - box[0])


def grid_image(
    cells: Sequence[Sequence[np.ndarray]],
    col_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    pad: int = 2,
    scale: int = 1,
) -> np.ndarray:
    """Compose equally sized (H, W, 3) uint8 panels into one white-background image.

    Layout (pixels): every panel is magnified ``scale`` times (nearest neighbour, so tiny
    frames stay crisp); panels are separated and framed by ``pad``; column captions add a
    strip of ``LABEL_HEIGHT`` on top, row captions a column as wide as the longest caption
    + 4. With neither: width = ncols*(W*scale) + (ncols+1)*pad, height likewise.
    """
    if not cells or not cells[0]:
        raise ValueError("grid_image needs at least one panel")
    ncols = len(cells[0])
    if any(len(r) != ncols for r in cells):
        raise ValueError(f"grid rows have different lengths: {[len(r) for r in cells]}")
    h, w = cells[0][0].shape[:2]
    for r in cells:
        for c in r:
            if c.shape != (h, w, 3) or c.dtype != np.uint8:
                raise ValueError(f"grid panels must all be uint8 ({h}, {w}, 3); got {c.dtype} {c.shape}")
    if col_labels is not None and len(col_labels) != ncols:
        raise ValueError(f"{len(col_labels)} column labels for {ncols} columns")
    if row_labels is not None and len(row_labels) != len(cells):
        raise ValueError(f"{len(row_labels)} row labels for {len(cells)} rows")
    ph, pw = h * scale, w * scale
    top = LABEL_HEIGHT if col_labels is not None else 0
    left = max(_text_width(s) for s in row_labels) + 4 if row_labels is not None else 0
    width = left + ncols * pw + (ncols + 1) * pad
    height = top + len(cells) * ph + (len(cells) + 1) * pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(cells):
        y = top + pad + i * (ph + pad)
        if row_labels is not None:
            draw.text((2, y + ph // 2), row_labels[i], fill=(0, 0, 0), font=_FONT, anchor="lm")
        for j, cell in enumerate(row):
            x = left + pad + j * (pw + pad)
            panel = Image.fromarray(cell)
            if scale != 1:
                panel = panel.resize((pw, ph), Image.NEAREST)
            canvas.paste(panel, (x, y))
    if col_labels is not None:
        for j, text in enumerate(col_labels):
            x = left + pad + j * (pw + pad) + pw // 2
            draw.text((x, top // 2 + 1), text, fill=(0, 0, 0), font=_FONT, anchor="mm")
    return np.asarray(canvas).copy()


def save_png(img: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H, W, 3) uint8 image as PNG (via a temporary name, then rename)."""
    p = Path(path)
    tmp = p.with_name(f"{p.stem}.tmp{p.suffix or '.png'}")
    Image.fromarray(img).save(tmp, format="PNG")
    os.replace(tmp, p)
    return p


def panel_row(
    input_frame: torch.Tensor | np.ndarray,
    true_next: torch.Tensor | np.ndarray,
    pred_next: torch.Tensor | np.ndarray,
    flow: torch.Tensor | np.ndarray,
    *,
    convention: str = "backward",
    max_radius: float | None = None,
    labels: Sequence[str] | None = ("input t", "true t+1", "pred t+1", "flow"),
    scale: int = 1,
    legend: bool = True,
    pad: int = 2,
) -> np.ndarray:
    """One video-panel frame: ``input | ground-truth next | predicted next | flow colour``.

    Frames: torch (C, H, W) (C = 1 gray or 3 RGB) or numpy (H, W[, C]); flow: (2, h, w) in
    the model's layout, at frame size or on a grid an integer factor smaller. ``max_radius``
    fixed -> every frame of a video shares one colour scale. Returns (H', W', 3) uint8;
    feed a list of these to :func:`write_gif` / :func:`write_mp4`.
    """
    frames = [to_rgb_uint8(x) for x in (input_frame, true_next, pred_next)]
    fl = _flow_panel(flow, frames[0].shape[:2], convention, max_radius, legend)
    return grid_image([frames + [fl]], col_labels=labels, pad=pad, scale=scale)


def paper_figure(
    inputs_last_k: torch.Tensor | np.ndarray,
    true_next: torch.Tensor | np.ndarray,
    pred_next: torch.Tensor | np.ndarray,
    flow: torch.Tensor | np.ndarray,
    path: str | os.PathLike | None = None,
    *,
    convention: str = "backward",
    max_radius: float | None = None,
    row_labels: Sequence[str] | None = None,
    scale: int = 1,
    legend: bool = True,
    pad: int = 2,
) -> np.ndarray:
    """A grid like the paper's Figs. 5 and 7; one row per sequence (or chosen time step).

    Columns: the last k input frames (t-k+1 .. t), ground-truth t+1, predicted t+1, and the
    predicted flow in colour with the wheel inset. Shapes (channel-first, tensors or arrays):
    ``inputs_last_k`` (N, k, C, H, W); ``true_next``/``pred_next`` (N, C, H, W); ``flow``
    (N, 2, h, w) with h = H / factor. ``max_radius=None`` gives the whole figure one scale
    (the largest magnitude in it), so rows are comparable. Writes a PNG if ``path``; returns
    the (H', W', 3) uint8 image.
    """
    xs = torch.as_tensor(inputs_last_k)
    yt = torch.as_tensor(true_next)
    yp = torch.as_tensor(pred_next)
    fl = torch.as_tensor(flow, dtype=torch.float32)
    if xs.dim() != 5:
        raise ValueError(f"inputs_last_k must be (N, k, C, H, W); got {tuple(xs.shape)}")
    n, k = xs.shape[:2]
    for name, t in (("true_next", yt), ("pred_next", yp)):
        if tuple(t.shape) != (n, *xs.shape[2:]):
            raise ValueError(f"{name} must be (N, C, H, W) = {(n, *xs.shape[2:])}; got {tuple(t.shape)}")
    if fl.dim() != 4 or fl.shape[:2] != (n, 2):
        raise ValueError(f"flow must be (N, 2, h, w) with N = {n}; got {tuple(fl.shape)}")
    size = tuple(xs.shape[-2:])
    if max_radius is None:
        max_radius = _max_radius(fl, size)
    rows = []
    for i in range(n):
        row = [to_rgb_uint8(xs[i, j]) for j in range(k)]
        row += [to_rgb_uint8(yt[i]), to_rgb_uint8(yp[i])]
        row.append(_flow_panel(fl[i], size, convention, max_radius, legend))
        rows.append(row)
    cols = [("t" if j == k - 1 else f"t-{k - 1 - j}") for j in range(k)] + ["t+1", "pred t+1", "flow"]
    img = grid_image(rows, col_labels=cols, row_labels=row_labels, pad=pad, scale=scale)
    if path is not None:
        save_png(img, path)
    return img


def warp_figure(
    frame: torch.Tensor | np.ndarray,
    flow: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    sampled: torch.Tensor | np.ndarray,
    path: str | os.PathLike | None = None,
    *,
    convention: str = "forward",
    max_radius: float | None = None,
    labels: Sequence[str] = ("sampler input", "flow", "target", "sampled"),
    scale: int = 1,
    pad: int = 2,
) -> np.ndarray:
    """A 2x2 grid like the paper's Fig. 3: first line the frame fed to the sampler and the
    flow in colour (legend inset top-right); second line the target frame and the sampled one.

    Frames: torch (C, H, W) or numpy (H, W[, C]); flow (2, H, W) tensor or (H, W, 2) array.
    Labels are drawn above each panel (first line's labels above the first line, etc.).
    Writes a PNG if ``path``; returns the (H', W', 3) uint8 image.
    """
    a, t, s = (to_rgb_uint8(x) for x in (frame, target, sampled))
    if not (a.shape == t.shape == s.shape):
        raise ValueError(f"warp_figure frames differ in size: {a.shape}, {t.shape}, {s.shape}")
    f = flow if isinstance(flow, torch.Tensor) else torch.from_numpy(np.asarray(flow, np.float32)).permute(2, 0, 1)
    fl = _flow_panel(f, a.shape[:2], convention, max_radius, legend=True)
    top = grid_image([[a, fl]], col_labels=labels[:2], pad=pad, scale=scale)
    bottom = grid_image([[t, s]], col_labels=labels[2:], pad=pad, scale=scale)
    img = np.concatenate([top, bottom], axis=0)
    if path is not None:
        save_png(img, path)
    return img


# --------------------------------------------------------------------------------------
# Videos


def _check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = [to_rgb_uint8(f) for f in frames]
    if not out:
        raise ValueError("no frames to write")
    if any(f.shape != out[0].shape for f in out):
        raise ValueError(f"video frames differ in size: {sorted({f.shape for f in out})}")
    return out


def write_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 10.0, loop: int = 0) -> Path:
    """Write (H, W, 3) uint8 frames as an animated GIF (PIL), looping forever by default.

    GIF stores delays in 1/100 s, so the rate is rounded to that; colours are reduced to a
    256-colour palette per frame. Pillow merges *identical consecutive* frames into one
    longer frame (the total duration is kept).
    """
    imgs = [Image.fromarray(f) for f in _check_frames(frames)]
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    p = Path(path)
    tmp = p.with_name(f"{p.stem}.tmp.gif")
    imgs[0].save(
        tmp, format="GIF", save_all=True, append_images=imgs[1:],
        duration=max(10, int(round(1000.0 / fps))), loop=loop,
    )
    os.replace(tmp, p)
    return p


def write_mp4(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 10.0, crf: int = 18) -> Path:
    """Write (H, W, 3) uint8 frames as H.264 MP4 (PyAV, libx264, yuv420p).

    yuv420p needs even sides: an odd width/height is padded by one black column/row on the
    right/bottom. ``crf`` is x264's quality (0 lossless .. 51; 18 is visually lossless).
    """
    import av  # imported here: only video writing needs FFmpeg

    fr = _check_frames(frames)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    h, w = fr[0].shape[:2]
    H, W = h + h % 2, w + w % 2
    p = Path(path)
    tmp = p.with_name(f"{p.stem}.tmp.mp4")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": str(crf)}
        for f in fr:
            if (H, W) != (h, w):
                f = np.pad(f, ((0, H - h), (0, W - w), (0, 0)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, p)
    return p


# --------------------------------------------------------------------------------------
# Curves


def plot_curves(
    runs: dict[str, Sequence[tuple[float, float]]],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    xlabel: str = "step",
    ylabel: str = "loss",
    logy: bool = False,
    size: tuple[float, float] = (6.4, 4.0),
    dpi: int = 100,
) -> Path:
    """Plot one line per run from ``{name: [(step, value), ...]}`` and write a PNG.

    Non-finite values are dropped from a line (a diverged step would otherwise blank the
    log axis). The image is ``size`` inches x ``dpi``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("plot_curves needs at least one run")
    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, points in runs.items():
        pts = np.asarray(list(points), dtype=np.float64).reshape(-1, 2)
        pts = pts[np.isfinite(pts).all(axis=1)]
        if logy:
            pts = pts[pts[:, 1] > 0]
        ax.plot(pts[:, 0], pts[:, 1], label=name, linewidth=1.2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    p = Path(path)
    tmp = p.with_name(f"{p.stem}.tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, p)
    return p


def smooth(points: list[tuple[float, float]], window: int) -> list[tuple[float, float]]:
    """Trailing moving average of the values over ``window`` points (1 = unchanged)."""
    if window <= 1 or len(points) < 2:
        return points
    xs = np.array([p[0] for p in points])
    vs = np.array([p[1] for p in points])
    c = np.cumsum(np.insert(vs, 0, 0.0))
    n = np.minimum(np.arange(1, len(vs) + 1), window)
    avg = (c[1:] - c[np.arange(1, len(vs) + 1) - n]) / n
    return list(zip(xs.tolist(), avg.tolist()))
