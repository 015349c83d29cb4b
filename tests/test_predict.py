"""stae predict: streaming prediction, frame fitting, outputs (.flo convention), bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from stae import machine
from stae.weights import save_model
from stae.cli import main
from stae.model.config import ModelConfig
from stae.errors import StaeError
from stae.flowio import read_flo
from stae.model import build_model
from stae.model.warp import backward_to_forward, upsample_flow
from stae.data.frames import LUMA, fit_for_model, to_channels
from stae.predict import predict_stream, resolve_steps

TINY = dict(encoder_channels=(4,), memory_channels=(4,), flow_kernel=3, spatial_kernel=3, memory_kernel=3)


def tiny_model(seed: int = 0, **kw):
    torch.manual_seed(seed)
    m = build_model(ModelConfig(**{**TINY, **kw}))
    with torch.no_grad():  # a non-zero flow (the default 1x1 init is the identity warp)
        m.flow.net[-1].weight.normal_(0.0, 0.5)
        m.flow.net[-1].bias.copy_(torch.tensor([0.7, -0.4]))
    return m.eval()


@pytest.fixture()
def files(tmp_path):
    model = tiny_model()
    ckpt = save_model(tmp_path / "tiny.safetensors", model)
    rng = np.random.default_rng(0)
    clips = (rng.random((2, 6, 1, 16, 16)) * 255).astype(np.uint8)
    np.save(tmp_path / "clips.npy", clips)
    return model, ckpt, tmp_path / "clips.npy", torch.from_numpy(clips).float() / 255.0


def test_predict_end_to_end_and_flo_is_forward_image_flow(files, tmp_path):
    model, ckpt, clip_path, clips = files
    out = tmp_path / "out"
    rc = main(["predict", str(ckpt), str(clip_path), "--index", "1", "--out", str(out), "--flo", "--steps", "4,-1",
               "--context", "3"])
    assert rc == 0
    for name in ("predict.mp4", "predict.gif", "figure.png", "predict.json"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".stae-staging-*"))  # the staging folder is gone
    # The model's flow on the same clip, run as a whole (forward == T steps).
    with torch.no_grad():
        flows = model(clips[1:2]).flows[0]  # (T, 2, 8, 8), backward, feature grid
    flos = sorted((out / "flow").glob("*.flo"))
    assert [f.name for f in flos] == [f"flow_{t:05d}.flo" for t in range(6)]
    for t, f in enumerate(flos):
        expected = backward_to_forward(upsample_flow(flows[t:t + 1], model.stride))[0]  # (2, 16, 16)
        got = torch.from_numpy(read_flo(f)).permute(2, 0, 1)
        assert got.shape == (2, 16, 16)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert float(flows.abs().max()) > 0.1  # the check above is not trivially about zeros
    # Panels: one per frame that has a true next frame (5), 4 columns.
    with Image.open(out / "predict.gif") as im:
        assert im.n_frames == 5
    import av
    with av.open(str(out / "predict.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5
    s = json.loads((out / "predict.json").read_text())
    assert s["frames"] == 6 and s["figure_steps"] == [4, 4] and s["horizon"] == 1
    assert len(s["steps"]) == 5
    with torch.no_grad():
        preds = model(clips[1:2]).frames[0]
    l2 = float((preds[0].double() - clips[1, 1].double()).pow(2).mean())
    assert s["steps"][0]["l2_pred"] == pytest.approx(l2, rel=1e-5)
    # The shared flow scale is the largest flow of the panels, in image pixels.
    radius = float(torch.linalg.vector_norm(flows[:5], dim=1).max()) * model.stride
    assert s["max_flow_pixels"] == pytest.approx(radius, rel=1e-5)


@pytest.mark.parametrize("feedback", ["frames", "features"])
def test_stream_with_horizon_equals_rollout(files, feedback):
    model, _, _, clips = files
    if feedback != model.config.rollout_feedback:
        twin = build_model(dataclasses.replace(model.config, rollout_feedback=feedback))
        twin.load_state_dict(model.state_dict())
        model = twin.eval()
    clip = clips[0]
    results = list(predict_stream(model, iter(clip), horizon=3))
    assert [r.t for r in results] == list(range(6))
    assert [r.target is not None for r in results] == [True] * 3 + [False] * 3
    for r in results:
        ro = model.rollout(clip[None, : r.t + 1], 3)
        torch.testing.assert_close(r.pred, ro.frames[0, -1], atol=1e-5, rtol=0)
        torch.testing.assert_close(r.flow, ro.flows[0, -1], atol=1e-5, rtol=0)
        if r.target is not None:
            assert torch.equal(r.target, clip[r.t + 3])


def test_bf16_stream_stays_close_and_leaves_autocast_off(files, tmp_path):
    model, ckpt, clip_path, clips = files
    exact = list(predict_stream(model, iter(clips[0])))
    stream = predict_stream(model, iter(clips[0]), bf16=True)
    first = next(stream)
    assert not torch.is_autocast_enabled("cpu")  # the caller runs between yields: not under autocast
    approx = [first, *stream]
    assert all(r.pred.dtype == r.flow.dtype == torch.float32 for r in approx)
    diffs = [float((a.pred - b.pred).abs().max()) for a, b in zip(exact, approx)]
    assert 0 < max(diffs) < 0.05
    out = tmp_path / "bf16"
    assert main(["predict", str(ckpt), str(clip_path), "--out", str(out), "--bf16", "--context", "2"]) == 0
    assert json.loads((out / "predict.json").read_text())["precision"] == "bf16 autocast"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_bf16_says_so(files, tmp_path, monkeypatch, capsys, native):
    """--bf16 where bfloat16 would be emulated: one note on stderr, and the run still completes."""
    _, ckpt, clip_path, _ = files
    monkeypatch.setattr(machine, "native_bf16", lambda: native)
    assert main(["predict", str(ckpt), str(clip_path), "--out", str(tmp_path / "o"), "--bf16", "--context", "2"]) == 0
    assert ("no bfloat16 instructions" in capsys.readouterr().err) is not native


def test_predict_horizon_cli(files, tmp_path):
    _, ckpt, clip_path, _ = files
    out = tmp_path / "h"
    assert main(["predict", str(ckpt), str(clip_path), "--out", str(out), "--horizon", "2", "--context", "2"]) == 0
    s = json.loads((out / "predict.json").read_text())
    assert s["horizon"] == 2 and len(s["steps"]) == 4
    with Image.open(out / "predict.gif") as im:
        assert im.n_frames == 4


def test_fit_crops_to_stride_and_converts_channels():
    model = tiny_model()  # stride 2, gray
    fit = fit_for_model(model, (17, 21))
    assert fit.crop == (0, 0, 16, 20) and fit.size == (16, 20)
    frame = torch.rand(3, 17, 21)
    out = fit.frame(frame)
    gray = sum(w * c for w, c in zip(LUMA, frame))
    torch.testing.assert_close(out[0], gray[:16, :20])
    assert to_channels(torch.rand(1, 4, 4), 3).shape == (3, 4, 4)
    # --size: centre crop to the aspect ratio, then resize.
    fit = fit_for_model(model, (20, 40), size=(8, 8))
    assert fit.crop == (0, 10, 20, 20) and fit.size == (8, 8)
    assert fit.labels(torch.arange(800).view(20, 40)).shape == (8, 8)
    with pytest.raises(StaeError, match="divisible by 2"):
        fit_for_model(model, (20, 40), size=(7, 8))
    with pytest.raises(StaeError, match="smaller than the model's stride"):
        fit_for_model(model, (1, 5))


def test_resolve_steps():
    assert resolve_steps([-1, 2], 5, 3) == [4, 2]
    with pytest.raises(StaeError, match="out of range"):
        resolve_steps([5], 5, 1)
    with pytest.raises(StaeError, match="t must be >= 2"):
        resolve_steps([1], 5, 3)


def test_frame_folder_rgb_input_to_gray_model(files, tmp_path):
    _, ckpt, _, _ = files
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):  # 17x19 RGB: cropped to 16x18, converted to gray
        Image.fromarray((rng.random((17, 19, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "o"
    assert main(["predict", str(ckpt), str(folder), "--out", str(out), "--context", "1"]) == 0
    s = json.loads((out / "predict.json").read_text())
    assert s["size_hw"] == [16, 18] and s["channels"] == 1 and "cropped to 18x16" in s["frame_fit"]


def test_existing_outputs_are_refused_then_forced(files, tmp_path, capsys):
    _, ckpt, clip_path, _ = files
    out = tmp_path / "out"
    args = ["predict", str(ckpt), str(clip_path), "--out", str(out)]
    assert main(args) == 0
    before = (out / "predict.gif").read_bytes()
    assert main(args + ["--max-flow", "3"]) == 2
    assert "already exists (use --force" in capsys.readouterr().err
    assert (out / "predict.gif").read_bytes() == before
    assert main(args + ["--max-flow", "3", "--force"]) == 0
    assert (out / "predict.gif").read_bytes() != before
    assert json.loads((out / "predict.json").read_text())["max_flow_pixels"] == 3.0


@pytest.mark.parametrize("extra, message", [
    (["--index", "7"], "--index 7 out of range"),
    (["--horizon", "6"], "needs at least 7"),
    (["--steps", "9"], "out of range"),
    (["--max-flow", "-1"], "--max-flow: expected a number > 0"),
    (["--size", "7x8"], "divisible by 2"),
])
def test_bad_options_exit_2_and_write_nothing(files, tmp_path, capsys, extra, message):
    _, ckpt, clip_path, _ = files
    out = tmp_path / "bad"
    assert main(["predict", str(ckpt), str(clip_path), "--out", str(out)] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("stae: error: ") and message in err and err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_bad_inputs_exit_2(files, tmp_path, capsys):
    model, ckpt, clip_path, _ = files
    assert main(["predict", str(ckpt), str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    # Frames smaller than the model's stride.
    np.save(tmp_path / "small.npy", np.zeros((1, 3, 1, 1, 1), np.uint8))
    assert main(["predict", str(ckpt), str(tmp_path / "small.npy"), "--out", str(tmp_path / "o")]) == 2
    assert "smaller than the model's stride" in capsys.readouterr().err
    # A checkpoint whose weights do not fit its config.
    from safetensors.torch import load_file, save_file
    from stae.weights import CONFIG_KEY, FORMAT_KEY, FORMAT_VERSION
    state = load_file(ckpt)
    other = ModelConfig(**{**TINY, "memory_channels": (5,)})
    save_file(state, tmp_path / "other.safetensors", metadata={CONFIG_KEY: other.to_json(), FORMAT_KEY: FORMAT_VERSION})
    assert main(["predict", str(tmp_path / "other.safetensors"), str(clip_path), "--out", str(tmp_path / "o")]) == 2
    assert "stae: error:" in capsys.readouterr().err


def test_video_file_input(files, tmp_path):
    from stae.viz import write_mp4

    _, ckpt, _, _ = files
    rng = np.random.default_rng(2)
    write_mp4([(rng.random((16, 20, 3)) * 255).astype(np.uint8) for _ in range(4)], tmp_path / "v.mp4")
    out = tmp_path / "o"
    assert main(["predict", str(ckpt), str(tmp_path / "v.mp4"), "--out", str(out), "--context", "2", "--flo"]) == 0
    s = json.loads((out / "predict.json").read_text())
    assert s["frames"] == 4 and s["size_hw"] == [16, 20] and s["channels"] == 1
    assert read_flo(out / "flow" / "flow_00003.flo").shape == (16, 20, 2)


def test_parse_size_is_every_commands_size(capsys):
    import argparse

    from stae.commands import parse_size

    assert parse_size("64") == (64, 64) and parse_size("48x64") == (48, 64) and parse_size("48X64") == (48, 64)
    for bad in ("abc", "0x4", "4x4x4", "-3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    for cmd in (["data", "moving-mnist", "--out", "x.npz"], ["evaluate", "ckpt"], ["predict", "ckpt", "in.npz"],
                ["propagate", "ckpt", "in.npz"], ["export", "ckpt"]):
        assert main([*cmd, "--size", "12xa"]) == 2
        assert "size '12xa': expected N or HxW" in capsys.readouterr().err
