"""stae propagate: the propagation rule (exact shifts), baselines, label PNGs, IoU report, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from stae.weights import save_model
from stae.cli import main
from stae.model.config import ModelConfig
from stae.model import build_model
from stae.label_maps import label_colors, labels_from_masks, read_label_png, write_label_png
from stae.label_warp import warp_labels
from stae.propagate import PropagationOptions, propagate
from stae.errors import StaeError

TINY = dict(encoder_channels=(4,), memory_channels=(4,), flow_kernel=3, spatial_kernel=3, memory_kernel=3)


def constant_flow_model(dx: float, dy: float):
    """A model whose flow is exactly (dx, dy) feature pixels everywhere: 1x1 conv weight 0, bias (dx, dy).
    The default init (1x1 weight and bias 0) is the zero flow."""
    torch.manual_seed(0)
    m = build_model(ModelConfig(**TINY))
    with torch.no_grad():
        m.flow.net[-1].weight.zero_()
        m.flow.net[-1].bias.copy_(torch.tensor([dx, dy]))
    return m.eval()


def blobs(h: int = 16, w: int = 16) -> torch.Tensor:
    lab = torch.zeros(h, w, dtype=torch.int64)
    lab[2:7, 3:9] = 1
    lab[9:14, 8:15] = 2
    lab[4:6, 10:12] = 7
    return lab


def test_zero_flow_model_equals_copy_first_mask():
    model = constant_flow_model(0.0, 0.0)
    frames = torch.rand(5, 1, 16, 16)
    res = propagate(model, frames, blobs(), methods=("predictive", "copy_first"))
    assert len(res.labels["predictive"]) == 5
    for a, b in zip(res.labels["predictive"], res.labels["copy_first"]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("options", [PropagationOptions(soft=True), PropagationOptions(soft=False)], ids=["soft", "hard"])
@pytest.mark.parametrize("dx, dy", [(1.0, 0.0), (0.0, -1.0), (1.0, 1.0)])
def test_constant_flow_moves_labels_by_exactly_that_shift(dx, dy, options):
    model = constant_flow_model(dx, dy)  # stride 2: image flow (2 dx, 2 dy) pixels
    sx, sy = int(2 * dx), int(2 * dy)
    lab0 = blobs()
    res = propagate(model, torch.rand(4, 1, 16, 16), lab0, methods=("predictive",), options=options)
    for t, lab in enumerate(res.labels["predictive"]):
        # labels_t(p) = labels_0(p + t * T): sample the start map shifted by t*(sx, sy), 0 outside.
        expected = torch.zeros_like(lab0)
        ys, xs = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
        src_y, src_x = ys + t * sy, xs + t * sx
        inside = (src_y >= 0) & (src_y < 16) & (src_x >= 0) & (src_x < 16)
        expected[inside] = lab0[src_y[inside], src_x[inside]]
        assert torch.equal(lab, expected), t


def test_warp_labels_many_and_large_labels():
    g = torch.Generator().manual_seed(0)
    lab = torch.randint(0, 40, (12, 12), generator=g) * 1000  # 40 labels > one chunk, values up to 39000
    flow = torch.zeros(2, 12, 12)
    flow[0] = -3.0  # out(p) = lab(p - 3 in x): content moves right by 3
    out = warp_labels(lab, flow, chunk=16)
    assert torch.equal(out[:, 3:], lab[:, :-3])
    assert torch.equal(out[:, :3], torch.zeros(12, 3, dtype=torch.int64))
    # Half-way between two labels: the bilinear vote ties, the smaller label wins.
    two = torch.tensor([[5, 9]])
    f = torch.zeros(2, 1, 2)
    f[0, 0, 0] = 0.5
    assert warp_labels(two, f)[0, 0] == 5
    f[0, 0, 0] = 0.6
    assert warp_labels(two, f)[0, 0] == 9


def test_label_png_round_trip(tmp_path):
    lab = blobs()
    write_label_png(tmp_path / "a.png", lab)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "P"  # viewable in colour, pixel values are the labels
    assert torch.equal(read_label_png(tmp_path / "a.png"), lab)
    big = lab * 300
    write_label_png(tmp_path / "b.png", big)
    assert torch.equal(read_label_png(tmp_path / "b.png"), big)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(StaeError, match="single-channel"):
        read_label_png(tmp_path / "rgb.png")
    assert label_colors(3).tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]


def test_labels_from_masks():
    masks = torch.zeros(1, 2, 3, 3, dtype=torch.bool)
    masks[0, 0, 0, 0] = True
    masks[0, 1, 2, 2] = True
    assert labels_from_masks(masks)[0].tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 2]]


@pytest.fixture()
def video(tmp_path):
    """A frame folder of 5 gray 16x16 frames, a label PNG and 5 true masks (static scene)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(folder / f"f{i}.png")
    write_label_png(tmp_path / "labels.png", blobs())
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(5):
        write_label_png(masks / f"m{i}.png", blobs())
    ckpt = save_model(tmp_path / "zero.safetensors", constant_flow_model(0.0, 0.0))
    return ckpt, folder, tmp_path / "labels.png", masks


def test_cli_video_with_true_masks(video, tmp_path):
    pytest.importorskip("cv2")  # the DIS baseline (stae[baselines])
    ckpt, folder, labels, masks = video
    out = tmp_path / "out"
    assert main(["propagate", str(ckpt), str(folder), "--labels", str(labels), "--true-masks", str(masks),
                 "--mode", "predictive", "--out", str(out)]) == 0
    s = json.loads((out / "propagate.json").read_text())
    assert s["frames"] == 5 and s["label_values"] == [0, 1, 2, 7]
    # A static scene with a zero-flow model: every method keeps the mask, IoU 1.
    assert s["mean_iou"]["predictive"] == 1.0 and s["mean_iou"]["copy_first"] == 1.0
    assert 0.0 <= s["mean_iou"]["dis"] <= 1.0
    assert len(s["per_frame"]) == 5
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"labels_{t:05d}.png" for t in range(5)]
    assert len(list((out / "overlays").glob("*.png"))) == 5
    for name in ("overlay.gif", "compare.gif"):
        with Image.open(out / name) as im:
            assert im.n_frames >= 1
    assert torch.equal(read_label_png(out / "labels" / "labels_00004.png"), blobs())


def test_cli_moving_mnist_reports_three_methods(tmp_path):
    pytest.importorskip("cv2")  # the DIS baseline (stae[baselines])
    ckpt = save_model(tmp_path / "zero.safetensors", constant_flow_model(0.0, 0.0))
    out = tmp_path / "mm"
    assert main(["propagate", str(ckpt), "--moving-mnist", "3", "--image-size", "32", "--frames", "4",
                 "--mode", "predictive", "--out", str(out)]) == 0
    s = json.loads((out / "propagate.json").read_text())
    assert set(s["mean_iou"]) == {"predictive", "dis", "copy_first"}
    assert s["mean_iou"]["predictive"] == s["mean_iou"]["copy_first"]  # zero flow == copying the first mask
    assert s["label_values"] == [0, 1, 2]


def test_label_size_mismatch_names_both_sizes(video, tmp_path, capsys):
    ckpt, folder, _, _ = video
    write_label_png(tmp_path / "wide.png", torch.zeros(16, 20, dtype=torch.int64))
    out = tmp_path / "o"
    assert main(["propagate", str(ckpt), str(folder), "--labels", str(tmp_path / "wide.png"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "20x16" in err and "16x16" in err and err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_bad_truth_and_options_exit_2(video, tmp_path, capsys):
    pytest.importorskip("cv2")  # the DIS baseline (stae[baselines])
    ckpt, folder, labels, masks = video
    (masks / "m4.png").unlink()  # 4 masks for 5 frames
    out = tmp_path / "o"
    assert main(["propagate", str(ckpt), str(folder), "--labels", str(labels), "--true-masks", str(masks),
                 "--out", str(out)]) == 2
    assert "ground truth ends at frame 4" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    assert main(["propagate", str(ckpt), str(folder), "--out", str(out)]) == 2
    assert "--labels" in capsys.readouterr().err
    assert main(["propagate", str(ckpt), str(folder), "--labels", str(labels), "--binary", "--out", str(out)]) == 2
    assert "--binary applies only with --moving-mnist" in capsys.readouterr().err
    assert main(["propagate", str(ckpt), "--out", str(out)]) == 2
    assert "--moving-mnist" in capsys.readouterr().err


def test_existing_outputs_refused(video, tmp_path, capsys):
    ckpt, folder, labels, _ = video
    out = tmp_path / "o"
    args = ["propagate", str(ckpt), str(folder), "--labels", str(labels), "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_clip_file_with_truth_supplies_labels_and_truth(tmp_path):
    pytest.importorskip("cv2")  # the DIS baseline (stae[baselines])
    from stae.data.files import save_moving_mnist

    npz = save_moving_mnist(tmp_path / "mm.npz", num_sequences=2, split="test", truth=True, num_frames=4, size=32)
    ckpt = save_model(tmp_path / "zero.safetensors", constant_flow_model(0.0, 0.0))
    out = tmp_path / "o"
    assert main(["propagate", str(ckpt), str(npz), "--index", "1", "--mode", "predictive", "--out", str(out)]) == 0
    s = json.loads((out / "propagate.json").read_text())
    assert s["labels"] == "the true labels of frame 0" and s["frames"] == 4
    assert s["mean_iou"]["predictive"] == s["mean_iou"]["copy_first"]


def test_start_warms_the_memory_then_labels_that_frame():
    """start=K: the model steps through frames 0..K-1 first, so the flow that carries the labels
    from frame K is T_K of the whole video (not of a video that begins at K)."""
    torch.manual_seed(1)
    model = build_model(ModelConfig(**TINY)).eval()
    with torch.no_grad():
        model.flow.net[-1].weight.normal_(0, 0.5)  # a flow that depends on the memory
    frames, lab = torch.rand(6, 1, 16, 16), blobs()
    res = propagate(model, frames, lab, methods=("predictive",), start=2)
    assert res.start == 2 and len(res.labels["predictive"]) == 4 and torch.equal(res.labels["predictive"][0], lab)
    with torch.no_grad():
        state = None
        for f in frames[:3]:
            _, flow, state = model.step(f.unsqueeze(0), state)
    from stae.model.warp import upsample_flow
    assert torch.equal(res.labels["predictive"][1], warp_labels(lab, upsample_flow(flow, model.stride)[0]))
    with torch.no_grad():
        _, cold, _ = model.step(frames[2].unsqueeze(0), None)  # frame 2 without the warm-up
    assert not torch.allclose(cold, flow)  # the warm-up changes the flow that carries the labels
    with pytest.raises(StaeError, match="cannot label frame 6: the video has only 6 frame"):
        propagate(model, frames, lab, start=6)
    with pytest.raises(StaeError, match="cannot label frame 9: the video has only 6 frame"):
        propagate(model, frames, lab, start=9)
    with pytest.raises(StaeError, match=">= 0"):
        propagate(model, frames, lab, start=-1)


def test_cli_start_labels_a_later_frame(tmp_path, capsys):
    pytest.importorskip("cv2")  # the DIS baseline (stae[baselines])
    ckpt = save_model(tmp_path / "zero.safetensors", constant_flow_model(0.0, 0.0))
    out = tmp_path / "mm"
    assert main(["propagate", str(ckpt), "--moving-mnist", "3", "--image-size", "32", "--frames", "6",
                 "--start", "2", "--out", str(out)]) == 0
    assert "mean IoU over frames 3..5" in capsys.readouterr().out
    s = json.loads((out / "propagate.json").read_text())
    assert s["labelled_frame"] == 2 and s["frames"] == 6 and [r["t"] for r in s["per_frame"]] == [2, 3, 4, 5]
    assert s["per_frame"][0]["observed"] == 1.0  # frame 2 carries its own true labels
    assert sorted(p.name for p in (out / "labels").iterdir())[0] == "labels_00002.png"
    assert main(["propagate", str(ckpt), "--moving-mnist", "3", "--image-size", "32", "--frames", "6",
                 "--start", "6", "--out", str(tmp_path / "bad")]) == 2
    assert "--start 6" in capsys.readouterr().err
