"""Figure grids, panel videos and curves (stae.viz)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stae.flowio import color_wheel_legend, flow_to_color
from stae.viz import (
    LABEL_HEIGHT,
    grid_image,
    panel_row,
    paper_figure,
    plot_curves,
    to_rgb_uint8,
    warp_figure,
    write_gif,
    write_mp4,
)


def test_to_rgb_uint8_gray_and_rgb():
    g = torch.tensor([[[0.0, 0.5, 1.0]]])  # (1, 1, 3) gray tensor
    assert to_rgb_uint8(g).tolist() == [[[0, 0, 0], [128, 128, 128], [255, 255, 255]]]
    rgb = torch.zeros(3, 1, 2)
    rgb[1] = 1.0  # green
    assert to_rgb_uint8(rgb).tolist() == [[[0, 255, 0], [0, 255, 0]]]
    assert to_rgb_uint8(np.full((2, 2), 7, np.uint8)).tolist() == [[[7, 7, 7]] * 2] * 2
    assert to_rgb_uint8(np.array([[2.0, -1.0]]))[0, :, 0].tolist() == [255, 0]  # clipped
    with pytest.raises(ValueError):
        to_rgb_uint8(torch.zeros(2, 4, 4))


def test_grid_image_layout_exact():
    a = np.zeros((5, 7, 3), np.uint8)
    img = grid_image([[a, a, a], [a, a, a]], pad=2, scale=3)
    assert img.shape == (2 * 15 + 3 * 2, 3 * 21 + 4 * 2, 3)
    assert img[0, 0].tolist() == [255, 255, 255] and img[2, 2].tolist() == [0, 0, 0]
    labelled = grid_image([[a, a, a]], col_labels=["x", "y", "z"], pad=2)
    assert labelled.shape == (LABEL_HEIGHT + 5 + 2 * 2, 3 * 7 + 4 * 2, 3)
    with pytest.raises(ValueError):
        grid_image([[a, a], [a]])


def _clip(n=2, k=3, c=1, h=32, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, k, c, h, w, generator=g),
        torch.rand(n, c, h, w, generator=g),
        torch.rand(n, c, h, w, generator=g),
        torch.randn(n, 2, h // 2, w // 2, generator=g),
    )


def test_paper_figure_size_panels_and_flow_panel(tmp_path):
    xs, yt, yp, fl = _clip()
    p = tmp_path / "fig.png"
    img = paper_figure(xs, yt, yp, fl, p, scale=2, pad=2, convention="backward")
    n, k, h, w = 2, 3, 64, 80  # panels are scale x frame size
    ncols = k + 3
    assert img.shape == (LABEL_HEIGHT + n * h + (n + 1) * 2, ncols * w + (ncols + 1) * 2, 3)
    with Image.open(p) as im:
        assert im.size == (img.shape[1], img.shape[0])
        assert np.array_equal(np.asarray(im.convert("RGB")), img)
    # Gray inputs are drawn gray: first panel of row 0 equals the frame, magnified 2x.
    y0, x0 = LABEL_HEIGHT + 2, 2
    panel = img[y0 : y0 + h : 2, x0 : x0 + w : 2]
    assert np.array_equal(panel, to_rgb_uint8(xs[0, 0]))
    # The flow panel: the flow mapped to image pixels (x2), coloured with one figure-wide
    # scale, with the legend inset top-right.
    fx0 = 2 + (ncols - 1) * (w + 2)
    flow_panel = img[y0 : y0 + h : 2, fx0 : fx0 + w : 2]
    up = torch.nn.functional.interpolate(fl, scale_factor=2, mode="bilinear", align_corners=False) * 2
    r = float(torch.linalg.vector_norm(up, dim=1).max())
    ref = flow_to_color(-up[0], max_radius=r)
    assert np.array_equal(flow_panel[20:, :20], ref[20:, :20])  # away from the legend
    leg = color_wheel_legend(9)  # default legend: max(9, a quarter of the 32-pixel side)
    assert np.array_equal(flow_panel[3:12, 28:37], leg)


def test_paper_figure_rgb_and_shape_errors():
    xs, yt, yp, fl = _clip(n=1, k=2, c=3, h=24, w=24)
    img = paper_figure(xs, yt, yp, fl, row_labels=["seq 0"])
    assert img.shape[0] == LABEL_HEIGHT + 24 + 2 * 2
    left = img.shape[1] - (5 * 24 + 6 * 2)  # the row-label column
    assert left > 0
    first = img[LABEL_HEIGHT + 2 : LABEL_HEIGHT + 26, left + 2 : left + 26]
    assert np.array_equal(first, to_rgb_uint8(xs[0, 0]))  # RGB drawn as RGB
    with pytest.raises(ValueError, match="pred_next"):
        paper_figure(xs, yt, yp[:, :1], fl)
    with pytest.raises(ValueError, match="integer downscaling"):
        paper_figure(xs, yt, yp, torch.zeros(1, 2, 7, 7))


def test_warp_figure_two_by_two(tmp_path):
    f = torch.rand(1, 30, 30)
    flow = np.random.default_rng(0).normal(size=(30, 30, 2)).astype(np.float32)
    img = warp_figure(f, flow, f, f, tmp_path / "w.png")
    line = LABEL_HEIGHT + 30 + 2 * 2
    assert img.shape == (2 * line, 2 * 30 + 3 * 2, 3)
    assert (tmp_path / "w.png").is_file()
    # Top-right panel is the forward flow in colour (checked away from the legend).
    assert np.array_equal(img[LABEL_HEIGHT + 2 + 20 : LABEL_HEIGHT + 32, 34:44], flow_to_color(flow)[20:, :10])


def _panel_frames(t=4):
    xs, yt, yp, _ = _clip(n=1, k=t, c=1, h=33, w=45)  # odd sizes: mp4 must pad
    fl = torch.randn(2, 33, 45, generator=torch.Generator().manual_seed(1))
    return [panel_row(xs[0, i], yt[0], yp[0], fl, max_radius=2.0) for i in range(t)]


def test_panel_row_layout():
    xs, yt, yp, _ = _clip(n=1, k=1, h=32, w=40)
    fl = torch.zeros(2, 16, 20)
    img = panel_row(xs[0, 0], yt[0], yp[0], fl, pad=2)
    assert img.shape == (LABEL_HEIGHT + 32 + 4, 4 * 40 + 5 * 2, 3)
    # Zero flow: the flow panel is white apart from the legend.
    flow_panel = img[LABEL_HEIGHT + 2 : LABEL_HEIGHT + 34, 3 * 42 + 2 : 4 * 42]
    assert (flow_panel[14:] == 255).all() and (flow_panel[:, :26] == 255).all()
    assert (flow_panel[2:13, 27:38] != 255).any()  # the legend's frame


def test_write_gif_and_mp4_read_back(tmp_path):
    frames = _panel_frames(4)
    h, w = frames[0].shape[:2]
    assert h % 2 == 1 or w % 2 == 1
    gif = write_gif(frames, tmp_path / "v.gif", fps=5)
    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.size == (w, h)
        assert im.info["duration"] == 200
    mp4 = write_mp4(frames, tmp_path / "v.mp4", fps=5)
    with av.open(str(mp4)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt) == ("h264", "yuv420p")
        decoded = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
    assert len(decoded) == 4
    assert decoded[0].shape == (h + h % 2, w + w % 2, 3)
    # Visually lossless: the decoded first frame is close to the input (yuv420p chroma aside).
    assert np.abs(decoded[0][:h, :w].astype(int) - frames[0].astype(int)).mean() < 12
    with pytest.raises(ValueError, match="differ in size"):
        write_mp4([frames[0], frames[0][:-1]], tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


def test_plot_curves(tmp_path):
    runs = {"a": [(0, 1.0), (10, 0.5), (20, 0.25)], "b": [(0, 2.0), (10, float("nan")), (20, 0.1)]}
    p = plot_curves(runs, tmp_path / "c.png", logy=True, size=(4, 3), dpi=50)
    with Image.open(p) as im:
        assert im.size == (200, 150)
    with pytest.raises(ValueError):
        plot_curves({}, tmp_path / "d.png")
