"""Flow colour code (Middlebury wheel) and .flo files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stae.errors import StaeError
from stae.flowio import (
    add_legend,
    color_wheel_legend,
    flow_to_color,
    make_colorwheel,
    read_flo,
    write_flo,
)


def _flow(*uv) -> np.ndarray:
    """Pixels in a row: _flow((u, v), ...) -> (1, n, 2) float32."""
    return np.array([uv], dtype=np.float32)


# ---------------------------------------------------------------- colour wheel


def test_colorwheel_matches_reference_table():
    wheel = make_colorwheel()
    assert wheel.shape == (55, 3) and wheel.dtype == np.uint8
    # Bin starts of colorcode.cpp: red, yellow, green, cyan, blue, magenta.
    assert wheel[0].tolist() == [255, 0, 0]
    assert wheel[15].tolist() == [255, 255, 0]
    assert wheel[21].tolist() == [0, 255, 0]
    assert wheel[25].tolist() == [0, 255, 255]
    assert wheel[36].tolist() == [0, 0, 255]
    assert wheel[49].tolist() == [255, 0, 255]
    # Integer ramps: 255*i/RY floored (RY = 15) and the last MR entry 255 - 255*5/6.
    assert wheel[1].tolist() == [255, 17, 0]
    assert wheel[54].tolist() == [255, 0, 255 - (255 * 5) // 6]


def test_zero_flow_is_white_and_unknown_is_black():
    img = flow_to_color(_flow((0, 0), (np.nan, 0), (0, 1e10 * np.nan)), max_radius=1.0)
    assert img[0, 0].tolist() == [255, 255, 255]
    assert img[0, 1].tolist() == [0, 0, 0]
    assert img[0, 2].tolist() == [0, 0, 0]
    # All-zero flow with the default (own max) radius: white, no division by zero.
    assert (flow_to_color(np.zeros((3, 4, 2), np.float32)) == 255).all()


def test_directions_at_max_radius_match_middlebury_code():
    # computeColor: a = atan2(-v, -u)/pi, fk = (a+1)/2*54. +x: atan2(-0, -1) = -pi -> bin 0 = red.
    # -x: atan2(-0, 1) = -0 -> fk = 27 -> bin 27 = CB[2] = (0, 255 - 255*2//11, 255) = (0, 209, 255).
    # +y (down): a = -1/2 -> fk = 13.5 -> halfway between bins 13 (255, 221, 0) and 14 (255, 238, 0).
    img = flow_to_color(_flow((1, 0), (-1, 0), (0, 1)), max_radius=1.0)
    assert img[0, 0].tolist() == [255, 0, 0]
    assert img[0, 1].tolist() == [0, 209, 255]
    assert img[0, 2].tolist() == [255, 229, 0]


def test_saturation_grows_with_magnitude_and_out_of_range_is_darkened():
    img = flow_to_color(_flow((0.25, 0), (0.5, 0), (1.0, 0), (2.0, 0)), max_radius=1.0).astype(int)
    # Red hue: R stays 255, G and B fall as 255 * (1 - r).
    assert img[0, :3, 0].tolist() == [255, 255, 255]
    assert img[0, :3, 1].tolist() == [191, 127, 0]
    # Beyond max_radius: the full colour times 0.75 (reference "out of range").
    assert img[0, 3].tolist() == [191, 0, 0]


def test_own_max_by_default_and_fixed_radius_shares_scale():
    a = _flow((1, 0), (0, 0))
    b = _flow((4, 0), (0, 0))
    # Default: each frame normalised by its own max -> both look saturated red.
    assert flow_to_color(a)[0, 0].tolist() == flow_to_color(b)[0, 0].tolist() == [255, 0, 0]
    # Fixed radius: the slower frame is paler, and the same flow gets the same colour in both.
    ca, cb = flow_to_color(a, max_radius=4.0), flow_to_color(b, max_radius=4.0)
    assert ca[0, 0].tolist() == [255, 191, 191]
    assert cb[0, 0].tolist() == [255, 0, 0]
    ab = np.concatenate([a, b], axis=1)
    assert (flow_to_color(ab, max_radius=4.0)[:, :2] == ca).all()


def test_torch_layout_and_backward_convention():
    hw2 = np.random.default_rng(0).normal(size=(5, 6, 2)).astype(np.float32)
    chw = torch.from_numpy(hw2).permute(2, 0, 1)
    assert (flow_to_color(chw) == flow_to_color(hw2)).all()
    assert (flow_to_color(chw[None]) == flow_to_color(hw2)).all()
    # The model's backward flow T is shown as forward motion -T: T = (-1, 0) is drawn red.
    assert flow_to_color(torch.tensor([[[-1.0]], [[0.0]]]), 1.0, convention="backward")[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(ValueError):
        flow_to_color(hw2, convention="sideways")
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        flow_to_color(np.zeros((2, 5, 6), np.float32))


def test_legend_and_inset():
    leg = color_wheel_legend(21)
    assert leg.shape == (21, 21, 3) and leg.dtype == np.uint8
    assert leg[10, 10].tolist() == [255, 255, 255]  # centre: zero flow
    assert leg[10, 20].tolist() == [255, 0, 0]  # right rim: +x at max radius
    assert leg[0, 0].tolist() == [255, 255, 255]  # outside the disc: background
    img = np.zeros((40, 50, 3), np.uint8)
    out = add_legend(img, size=11, margin=2)
    assert (img == 0).all()  # input untouched
    assert (out[2:15, 35:48] != 0).any() and (out[20:, :] == 0).all() and (out[:, :35] == 0).all()
    assert (out[3:14, 36:47] == color_wheel_legend(11)).all()
    with pytest.raises(ValueError):
        add_legend(np.zeros((8, 8, 3), np.uint8), size=11)


# ---------------------------------------------------------------- .flo files


def test_flo_round_trip_with_unknown(tmp_path):
    rng = np.random.default_rng(1)
    flow = rng.normal(scale=5, size=(7, 9, 2)).astype(np.float32)
    flow[2, 3, 0] = np.nan
    flow[4, 1] = np.inf
    p = tmp_path / "a.flo"
    write_flo(p, flow)
    raw = p.read_bytes()
    assert raw[:4] == b"PIEH" and len(raw) == 12 + 7 * 9 * 8
    assert np.frombuffer(raw, "<i4", 2, 4).tolist() == [9, 7]  # width, then height
    # Interleaved (u, v) row by row: the second float of the body is v at (0, 0).
    assert np.frombuffer(raw, "<f4", 2, 12).tolist() == flow[0, 0].tolist()
    back = read_flo(p)
    assert back.shape == (7, 9, 2) and back.dtype == np.float32
    unknown = ~np.isfinite(flow)
    assert (np.isnan(back) == unknown).all()
    assert np.array_equal(back[~unknown], flow[~unknown])
    # Unknown is stored as 1e10 (> 1e9 threshold), as Middlebury readers expect.
    assert np.frombuffer(raw, "<f4", 1, 12 + 4 * (2 * (2 * 9 + 3)))[0] == np.float32(1e10)


def test_flo_torch_layout_written_as_hw2(tmp_path):
    t = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    write_flo(tmp_path / "t.flo", t)
    assert np.array_equal(read_flo(tmp_path / "t.flo"), t.permute(1, 2, 0).numpy())


def _header(w: int, h: int, magic: float = 202021.25) -> bytes:
    return np.array([magic], "<f4").tobytes() + np.array([w, h], "<i4").tobytes()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"PIE", "shorter than the 12-byte header"),
        (_header(2, 2, magic=1.0) + bytes(32), "magic"),
        (_header(2, 2) + bytes(31), "truncated"),
        (_header(2, 2) + bytes(40), "trailing"),
        (_header(0, 5), "corrupt .flo header"),
        (_header(-3, 5), "corrupt .flo header"),
        (_header(2_000_000, 2_000_000), "corrupt .flo header"),
    ],
)
def test_bad_flo_files_raise_stae_error_naming_file(tmp_path, content, match):
    p = tmp_path / "bad.flo"
    p.write_bytes(content)
    with pytest.raises(StaeError, match=match) as e:
        read_flo(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)
