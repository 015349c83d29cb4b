"""Carrying labels well (issue 14): soft labels, occlusion handling, the observed mode's flow
refinement, and bad label maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from stae.cli import main
from stae.flow_refine import RefineOptions, gaussian_blur, refine_flow
from stae.label_maps import MAX_LABELS, from_probabilities, label_values, to_probabilities, write_label_png
from stae.label_warp import forward_backward_occlusion, warp_labels, warp_probabilities
from stae.errors import StaeError


def moving_square(shift: int = 2, size: int = 24):
    """A bright square (label 1) at x = 6..11 in frame 0 moving ``shift`` px right over a static
    textured background (label 0): frames (2, 1, H, W), labels (2, H, W), exact backward flow
    (frame 1 -> 0) and forward flow (frame 0 -> 1), each (1, 2, H, W)."""
    g = torch.Generator().manual_seed(0)
    background = 0.2 * torch.rand(size, size, generator=g)
    frames, labels = torch.zeros(2, 1, size, size), torch.zeros(2, size, size, dtype=torch.int64)
    for t in range(2):
        x0 = 6 + t * shift
        frames[t, 0] = background
        frames[t, 0, 8:14, x0:x0 + 6] = 0.9
        labels[t, 8:14, x0:x0 + 6] = 1
    backward, forward = torch.zeros(1, 2, size, size), torch.zeros(1, 2, size, size)
    backward[0, 0][labels[1] == 1] = -shift  # a square pixel of frame 1 was shift px to the left
    forward[0, 0][labels[0] == 1] = shift
    return frames, labels, backward, forward


def test_soft_labels_stay_normalised_under_any_flow_and_occlusion():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 12, 12, generator=g)
    probs = torch.softmax(logits, 1)
    flow = 3 * torch.randn(2, 2, 12, 12, generator=g)  # some sources fall outside the frame
    holes = torch.rand(2, 1, 12, 12, generator=g) > 0.7
    frame = torch.rand(2, 3, 12, 12, generator=g)
    for out in (warp_probabilities(probs, flow), warp_probabilities(probs, flow, holes, frame)):
        assert (out >= 0).all()
        assert torch.allclose(out.sum(1), torch.ones(2, 12, 12), atol=1e-6)
    far = torch.full((2, 2, 12, 12), 50.0)  # every source outside: background everywhere
    assert torch.equal(warp_probabilities(probs, far)[:, 0], torch.ones(2, 12, 12))


@pytest.mark.parametrize("dx, dy", [(2, 0), (0, -3), (1, 1)])
def test_integer_flow_moves_soft_and_hard_labels_exactly(dx, dy):
    lab = torch.zeros(16, 16, dtype=torch.int64)
    lab[3:9, 4:10], lab[10:14, 2:6] = 1, 5
    flow = torch.zeros(1, 2, 16, 16)
    flow[0, 0], flow[0, 1] = -dx, -dy  # out(p) = lab(p - (dx, dy)): content moves by (dx, dy)
    expected = torch.zeros_like(lab)
    expected[3 + dy:9 + dy, 4 + dx:10 + dx], expected[10 + dy:14 + dy, 2 + dx:6 + dx] = 1, 5
    values = label_values(lab)
    soft = warp_probabilities(to_probabilities(lab[None], values), flow)
    # one-hot again (to float rounding: grid_sample maps pixels to [-1, 1] and back)
    assert torch.allclose(soft, to_probabilities(expected[None], values), atol=1e-5)
    assert torch.equal(from_probabilities(soft, values)[0], expected)
    assert torch.equal(warp_labels(lab, flow[0]), expected)


def test_occluded_region_is_not_overwritten_by_the_occluder():
    frames, labels, backward, forward = moving_square(shift=2)
    occluded = forward_backward_occlusion(backward, forward)
    revealed = torch.zeros(24, 24, dtype=torch.bool)
    revealed[8:14, 6:8] = True  # the background the square moved off
    assert torch.equal(occluded[0, 0], revealed)
    values = label_values(labels[0])
    start = to_probabilities(labels[:1], values)
    dragged = from_probabilities(warp_probabilities(start, backward), values)[0]
    assert (dragged[revealed] == 1).all()  # without the check the square's label stays behind
    kept = from_probabilities(warp_probabilities(start, backward, occluded, frames[1:]), values)[0]
    assert torch.equal(kept, labels[1])  # with it: the revealed strip is background again


def test_consistent_flows_flag_nothing():
    flow = torch.zeros(1, 2, 10, 10)
    flow[:, 0] = 1.5
    assert not forward_backward_occlusion(flow, -flow).any()


def test_refine_flow_recovers_a_translation_from_a_wrong_start():
    g = torch.Generator().manual_seed(0)
    source = gaussian_blur(torch.rand(1, 1, 40, 40, generator=g), 1.5)
    true = torch.zeros(1, 2, 40, 40)
    true[:, 0], true[:, 1] = 1.5, -1.0
    from stae.model.warp import warp

    target = warp(source, true, padding_mode="border")
    flow = refine_flow(target, source, torch.zeros_like(true))
    error = (flow - true)[..., 6:-6, 6:-6].abs()
    assert error.mean() < 0.03 and error.max() < 0.2
    # identical frames: stays at zero, up to the float noise of grid_sample at integer points
    assert refine_flow(source, source, torch.zeros_like(true)).abs().max() < 0.01


def test_refine_flow_treats_each_pair_of_a_batch_as_if_alone():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(3, 1, 12, 12, generator=g), torch.rand(3, 1, 12, 12, generator=g)
    init = torch.randn(3, 2, 12, 12, generator=g)
    o = RefineOptions(steps=5)
    batch = refine_flow(a, b, init, o)
    alone = torch.cat([refine_flow(a[i:i + 1], b[i:i + 1], init[i:i + 1], o) for i in range(3)])
    assert torch.allclose(batch, alone, atol=1e-3)  # to float rounding, which Adam's 1/sqrt(v) magnifies


def test_observed_mode_on_a_static_video_keeps_the_labels(tmp_path, capsys):
    from stae.model import build_model
    from stae.model.config import ModelConfig
    from stae.weights import save_model

    folder = tmp_path / "frames"
    folder.mkdir()
    still = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    for i in range(4):
        Image.fromarray(still).save(folder / f"{i}.png")
    lab = torch.zeros(16, 16, dtype=torch.int64)
    lab[4:10, 3:12] = 3
    write_label_png(tmp_path / "lab.png", lab)
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder_channels=(4,), memory_channels=(4,), flow_kernel=3, spatial_kernel=3,
                                    memory_kernel=3))
    with torch.no_grad():
        model.flow.net[-1].bias.zero_()
        model.flow.net[-1].weight.zero_()  # zero flow: the refinement starts where the truth is
    ckpt = save_model(tmp_path / "m.safetensors", model)
    out = tmp_path / "o"
    assert main(["propagate", str(ckpt), str(folder), "--labels", str(tmp_path / "lab.png"), "--occlusion",
                 "--out", str(out)]) == 0
    from stae.label_maps import read_label_png

    assert torch.equal(read_label_png(out / "labels" / "labels_00003.png"), lab)


def test_bad_label_images_give_one_error_line(tmp_path, capsys):
    from stae.model import build_model
    from stae.model.config import ModelConfig
    from stae.weights import save_model

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / f"{i}.png")
    ckpt = save_model(tmp_path / "m.safetensors", build_model(ModelConfig(encoder_channels=(4,), memory_channels=(4,))))
    many = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) + 1  # 256 labels + background > MAX_LABELS
    assert len(np.unique(many)) + 1 > MAX_LABELS
    Image.fromarray(many).save(tmp_path / "many.png")
    (tmp_path / "text.png").write_text("not a picture")
    write_label_png(tmp_path / "small.png", torch.zeros(8, 8, dtype=torch.int64))
    cases = {"many.png": "more than the 256", "text.png": "not an image", "small.png": "8x8"}
    for name, message in cases.items():
        out = tmp_path / f"out-{name}"
        code = main(["propagate", str(ckpt), str(folder), "--labels", str(tmp_path / name), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (name, err)
        assert not out.exists() or not any(out.iterdir())
    with pytest.raises(StaeError, match="more than the 256"):
        label_values(torch.from_numpy(many.astype(np.int64)))


def test_hard_labels_are_the_rounded_soft_step():
    """The propagator's hard rule (probabilities rounded to one-hot every step) is warp_labels's vote."""
    g = torch.Generator().manual_seed(3)
    lab = torch.randint(0, 4, (12, 12), generator=g) * 7
    flow = 2 * torch.randn(1, 2, 12, 12, generator=g)
    values = label_values(lab)
    rounded = from_probabilities(warp_probabilities(to_probabilities(lab[None], values), flow), values)[0]
    assert torch.equal(rounded, warp_labels(lab, flow[0]))


def test_occlusion_in_predictive_mode_is_refused(tmp_path, capsys):
    from stae.model import build_model
    from stae.model.config import ModelConfig
    from stae.weights import save_model

    ckpt = save_model(tmp_path / "m.safetensors", build_model(ModelConfig(encoder_channels=(4,), memory_channels=(4,))))
    code = main(["propagate", str(ckpt), "--moving-mnist", "0", "--image-size", "32", "--frames", "3",
                 "--mode", "predictive", "--occlusion", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--occlusion needs the forward flow" in err and err.count("\n") == 1
