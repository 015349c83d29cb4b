"""The weakly-supervised segmentation application (stae.segment, `stae segment-demo`)."""

from __future__ import annotations

import json

import pytest
import torch

from stae.cli import main
from stae.segment import (NUM_CLASSES, SegmentationNet, SegmentTraining, class_sequences, pooled_iou,
                          train_segmentation, training_labels)


@pytest.mark.parametrize("data", ["moving_mnist", "textures"])
def test_class_sequences_give_semantic_classes(data):
    clips, classes = class_sequences(data, "train", 3, num_frames=4)
    assert clips.shape == (3, 4, 1, 64, 64) and classes.shape == (3, 4, 64, 64)
    assert 0 <= int(classes.min()) and int(classes.max()) < NUM_CLASSES[data]
    assert (classes > 0).any() and (classes == 0).any()
    if data == "moving_mnist":  # a digit pixel is bright: the classes cover exactly the digits
        assert torch.equal(classes > 0, clips[:, :, 0] > 0.5)


def test_pooled_iou_by_hand():
    pred = torch.tensor([[0, 1, 1], [2, 2, 0]])
    true = torch.tensor([[0, 1, 0], [2, 1, 0]])
    # class 1: 1 common pixel of 3 in the union; class 2: 1 of 2
    assert pooled_iou(pred, true, 3) == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert pooled_iou(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long), 3) is None


def test_training_labels_keep_the_labelled_frames_and_add_propagated_ones():
    clips = torch.rand(2, 6, 1, 16, 16)
    classes = torch.zeros(2, 6, 16, 16, dtype=torch.long)
    classes[:, :, 4:9, 4:9] = 1  # a static square: DIS (on these random frames) moves it, copying would not
    frames, maps, truth = training_labels(None, clips, classes, every=3, variant="labelled")
    assert len(frames) == 4 and torch.equal(maps, truth)  # frames 0 and 3 of both sequences
    pytest.importorskip("cv2")
    frames, maps, truth = training_labels(None, clips, classes, every=3, variant="dis")
    assert len(frames) == 12 and torch.equal(truth[:2], classes[:, 0]) and torch.equal(maps[:2], classes[:, 0])


def test_segmentation_net_learns_a_bright_square():
    g = torch.Generator().manual_seed(0)
    frames = 0.1 * torch.rand(32, 1, 16, 16, generator=g)
    maps = torch.zeros(32, 16, 16, dtype=torch.long)
    for i in range(32):
        y, x = (int(v) for v in torch.randint(0, 10, (2,), generator=g))
        frames[i, 0, y:y + 6, x:x + 6] += 0.8
        maps[i, y:y + 6, x:x + 6] = 1
    net = train_segmentation(frames, maps, 2, SegmentTraining(steps=150, batch_size=8, width=8, lr=1e-2))
    assert isinstance(net, SegmentationNet)
    with torch.no_grad():
        pred = net(frames).argmax(1)
    assert pooled_iou(pred, maps, 2) > 0.9


def test_segment_demo_quick_writes_json_and_figure(tmp_path, capsys):
    pytest.importorskip("cv2")
    out = tmp_path / "seg"
    assert main(["segment-demo", "--quick", "--data", "moving_mnist", "--out", str(out)]) == 0
    s = json.loads((out / "segment.json").read_text())
    rows = s["results"][0]["rows"]
    assert set(rows) == {"labelled", "stae", "dis"} and s["models"] == {"moving_mnist": "vanilla-mmnist"}
    assert rows["labelled"]["training_label_iou"] == 1.0  # the labelled frames carry the truth
    assert rows["stae"]["training_frames"] == 10 * rows["labelled"]["training_frames"]
    assert (out / "segment.png").stat().st_size > 0
    assert main(["segment-demo", "--quick", "--data", "moving_mnist", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["segment-demo", "--quick", "--checkpoint", "vanilla-mmnist", "--out", str(tmp_path / "x")]) == 2
    assert "--checkpoint applies to one --data" in capsys.readouterr().err
