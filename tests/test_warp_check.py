"""`stae warp-check`: warping with the true flow through the model's sampler (paper Sec. 4, Fig. 3).

No Sintel here: frame pairs are made from a smooth analytic texture f with a known FORWARD
flow F on FRAME, exactly: NEXT(q) = f(q), FRAME(p) = f(p + F(p)), so NEXT(p + F(p)) = FRAME(p).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from stae.cli import main
from stae.warp_check import load_image, warp_with_true_flow
from stae.flowio import write_flo


def _texture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth RGB texture in [0.05, 0.95] at coordinates (x, y) -> (3, H, W) float32."""
    chans = [
        0.5 + 0.2 * np.sin(0.31 * x + 0.17 * y + ph) + 0.15 * np.sin(0.13 * x - 0.29 * y + 1 + ph)
        + 0.1 * np.cos(0.23 * x + 0.41 * y - ph)
        for ph in (0.0, 1.3, 2.6)
    ]
    return np.stack(chans).astype(np.float32)


def _pair(h: int, w: int, kind: str):
    """(FRAME, F, NEXT) tensors: (3, h, w), (2, h, w) forward flow on FRAME, (3, h, w)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == "integer":
        f = np.stack([np.full((h, w), 3.0), np.full((h, w), -2.0)])
    elif kind == "constant":
        f = np.stack([np.full((h, w), 2.5), np.full((h, w), -1.5)])
    else:  # smoothly varying, up to 3 pixels
        f = np.stack([3 * np.sin(2 * np.pi * ys / h) * np.cos(np.pi * xs / w), 2 * np.cos(2 * np.pi * xs / w)])
    frame, nxt = _texture(xs + f[0], ys + f[1]), _texture(xs, ys)
    return torch.from_numpy(frame), torch.from_numpy(f.astype(np.float32)), torch.from_numpy(nxt)


def test_integer_flow_is_exact_and_out_of_image_is_invalid():
    frame, f, nxt = _pair(20, 24, "integer")
    r = warp_with_true_flow(frame, f, nxt, "reconstruct")
    assert r["mean_abs_error"] < 1e-6
    # p + (3, -2) inside a 24x20 image: x <= 20, y >= 2 -> 21 * 18 valid pixels.
    assert r["valid"].sum() == 21 * 18 and r["valid_fraction"] == pytest.approx(21 * 18 / (20 * 24))
    assert r["mean_abs_error_all_pixels"] > 0.05  # zeros sampled outside the image
    assert torch.equal(r["target"], frame) and torch.equal(r["sampler_input"], nxt)


@pytest.mark.parametrize("kind", ["constant", "varying"])
def test_true_flow_small_error_wrong_sign_large(kind):
    frame, f, nxt = _pair(48, 64, kind)
    good = warp_with_true_flow(frame, f, nxt, "reconstruct")["mean_abs_error"]
    bad = warp_with_true_flow(frame, -f, nxt, "reconstruct")["mean_abs_error"]
    assert good < 0.004  # bilinear interpolation error only (paper: 0.004 on Sintel)
    assert bad > 0.1


def test_unknown_flow_pixels_are_excluded():
    frame, f, nxt = _pair(20, 24, "integer")
    f = f.clone()
    f[:, 5:8, 5:8] = float("nan")
    r = warp_with_true_flow(frame, f, nxt, "reconstruct")
    assert not r["valid"][5:8, 5:8].any() and torch.isfinite(r["sampled"]).all()
    assert r["mean_abs_error"] < 1e-6


def test_predict_mode_is_first_order():
    # warp(FRAME, -F) predicts NEXT: exact for constant flow, an extra error where F varies;
    # reconstruct mode has no such term.
    for kind, limit in (("constant", 0.004), ("varying", 0.03)):
        frame, f, nxt = _pair(48, 64, kind)
        pred = warp_with_true_flow(frame, f, nxt, "predict")
        assert torch.equal(pred["target"], nxt) and pred["mean_abs_error"] < limit
    rec = warp_with_true_flow(frame, f, nxt, "reconstruct")["mean_abs_error"]
    assert pred["mean_abs_error"] > 3 * rec


def _save_png(t: torch.Tensor, path) -> None:
    a = np.round(t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    Image.fromarray(a).save(path)


def _write_pair(d, kind="varying", h=40, w=56, sign=1.0):
    frame, f, nxt = _pair(h, w, kind)
    _save_png(frame, d / "frame.png")
    _save_png(nxt, d / "next.png")
    write_flo(d / "flow.flo", sign * f)
    return d / "frame.png", d / "flow.flo", d / "next.png"


def test_cli_end_to_end(tmp_path, capsys):
    fr, fl, nx = _write_pair(tmp_path)
    out = tmp_path / "out"
    assert main(["warp-check", str(fr), str(fl), str(nx), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    res = json.loads((out / "warp_check.json").read_text())
    assert res["mode"] == "reconstruct" and res["num_pairs"] == 1
    assert res["mean_abs_error"] < 0.005  # + 8-bit quantisation of both PNGs
    assert f"{res['mean_abs_error']:.5f}" in printed
    with Image.open(out / "warp_check.png") as im:  # 2x2 panels of 56x40 with caption strips
        assert im.size == (2 * 56 + 3 * 2, 2 * (14 + 40 + 2 * 2))
    # The wrong sign gives a large error.
    write_flo(fl, -_pair(40, 56, "varying")[1])
    before = (out / "warp_check.json").read_bytes()
    assert main(["warp-check", str(fr), str(fl), str(nx), "--out", str(out)]) == 2  # existing outputs are kept
    assert "already exists (use --force" in capsys.readouterr().err and (out / "warp_check.json").read_bytes() == before
    assert main(["warp-check", str(fr), str(fl), str(nx), "--out", str(out), "--force"]) == 0
    assert json.loads((out / "warp_check.json").read_text())["mean_abs_error"] > 0.1


def test_cli_folder_mode_sintel_layout(tmp_path):
    # Three frames of a constant 2.5 px/frame motion: frame_000N(p) = f(p + (N-1) F).
    ys, xs = np.mgrid[0:32, 0:40].astype(np.float64)
    f = np.stack([np.full((32, 40), 2.5), np.full((32, 40), 1.0)]).astype(np.float32)
    flows = tmp_path / "flow"
    flows.mkdir()
    for n in (1, 2, 3):
        _save_png(torch.from_numpy(_texture(xs + (3 - n) * f[0], ys + (3 - n) * f[1])), tmp_path / f"frame_{n:04d}.png")
    for n in (1, 2):
        write_flo(flows / f"frame_{n:04d}.flo", f.transpose(1, 2, 0))  # numpy flows are (H, W, 2)
    out = tmp_path / "out"
    assert main(["warp-check", str(tmp_path), "--flow-dir", str(flows), "--out", str(out)]) == 0
    res = json.loads((out / "warp_check.json").read_text())
    assert res["num_pairs"] == 2 and res["mean_abs_error"] < 0.005
    assert [p["next"].endswith(f"frame_{n:04d}.png") for p, n in zip(res["pairs"], (2, 3))] == [True, True]
    # Without --flow-dir the .flo files are looked for beside the frames: none there.
    assert main(["warp-check", str(tmp_path), "--out", str(out)]) == 2


def test_cli_bad_input_returns_2_and_keeps_outputs(tmp_path, capsys):
    fr, fl, nx = _write_pair(tmp_path)
    out = tmp_path / "out"
    assert main(["warp-check", str(fr), str(fl), str(nx), "--out", str(out)]) == 0
    before = (out / "warp_check.json").read_bytes()
    capsys.readouterr()
    # Flow of another size than the frames.
    write_flo(tmp_path / "small.flo", np.zeros((10, 12, 2), np.float32))
    assert main(["warp-check", str(fr), str(tmp_path / "small.flo"), str(nx), "--out", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stae: error: ") and "small.flo" in err and "12x10" in err
    # Frames of different sizes.
    Image.new("RGB", (20, 20)).save(tmp_path / "tiny.png")
    assert main(["warp-check", str(fr), str(fl), str(tmp_path / "tiny.png"), "--out", str(out), "--force"]) == 2
    # A PNG where the .flo should be (bad magic), a missing file, a wrong argument count.
    assert main(["warp-check", str(fr), str(nx), str(nx), "--out", str(out), "--force"]) == 2
    assert "magic" in capsys.readouterr().err
    assert main(["warp-check", str(fr), str(tmp_path / "nope.flo"), str(nx), "--out", str(out), "--force"]) == 2
    assert main(["warp-check", str(fr), str(fl), "--out", str(out), "--force"]) == 2
    assert main(["warp-check", str(fr), str(fl), str(nx), "--flow-dir", str(tmp_path), "--out", str(out), "--force"]) == 2
    assert (out / "warp_check.json").read_bytes() == before


def test_load_image_gray_and_16bit(tmp_path):
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").tolist() == [[[0.0, 1.0]]]
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tmp_path / "g16.png")
    assert load_image(tmp_path / "g16.png").tolist() == [[[0.0, 1.0]]]
    Image.new("RGBA", (3, 2)).save(tmp_path / "c.png")
    assert load_image(tmp_path / "c.png").shape == (3, 2, 3)
