"""train.flow_supervision_weight: the end-point error against a generator's exact flow (beyond the paper)."""

from __future__ import annotations

import json

import pytest
import torch

from stae.cli import main
from stae.errors import StaeError
from stae.losses import flow_supervision_epe
from stae.model import build_model
from stae.training.loop import clip_loss, loss_weights
from stae.training.run_config import load_config
from tests.helpers import TINY_MODEL, tiny_config


def test_epe_upsamples_the_feature_flow_by_hand():
    flows = torch.zeros(2, 3, 2, 4, 4)
    flows[:, :, 0] = 1.0  # 1 feature pixel in x = 2 image pixels at stride 2
    truth = torch.zeros(2, 3, 2, 8, 8)
    truth[:, :, 0] = 2.0
    assert float(flow_supervision_epe(flows, truth)) == pytest.approx(0.0, abs=1e-5)
    truth[:, :, 0], truth[:, :, 1] = 5.0, 4.0  # error (3, 4) everywhere: 5 px
    assert float(flow_supervision_epe(flows, truth)) == pytest.approx(5.0)


def test_clip_loss_adds_the_term_for_the_steps_it_scores():
    cfg = load_config(overrides=["data.context=3", "train.loss_steps=all", "train.loss_warmup=1",
                                 "train.flow_supervision_weight=0.5"])
    model = build_model(tiny_config())
    clip, truth = torch.rand(2, 4, 1, 8, 8), torch.randn(2, 3, 2, 8, 8)
    terms, out = clip_loss(model, clip, cfg, loss_weights(cfg), true_flows=truth)
    expected = flow_supervision_epe(out.flows, truth[:, 1:3])  # steps 1 and 2 predict frames 2 and 3
    assert torch.allclose(terms["flow_supervision"], expected)
    without, _ = clip_loss(model, clip, cfg, loss_weights(cfg))
    assert torch.allclose(terms["total"], without["total"] + 0.5 * expected)


def test_training_with_flow_supervision_logs_the_term(tmp_path):
    sets = [f"model.{k}={json.dumps(v)}" for k, v in TINY_MODEL.items()]
    sets += ["data.source=moving_mnist", "data.size=32", "data.num_frames=5", "data.context=3", "data.train_sequences=8",
             "data.val_sequences=2", "train.batch_size=2", "train.max_steps=2", "train.flow_supervision_weight=1.0",
             "train.loss_warmup=0",
             "checkpoint.every_steps=2", "checkpoint.val_batches=1", "log.progress=false", "log.tensorboard=false"]
    assert main(["train", "--out", str(tmp_path / "run")] + [a for s in sets for a in ("--set", s)]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("kind") == "train"]
    assert train and all(r["flow_supervision"] > 0 for r in train)
    assert all("flow_supervision" not in r for r in records if r.get("kind") == "val")  # no truth in validation


@pytest.mark.parametrize("sets, message", [
    (["train.flow_supervision_weight=1", "data.source=file", "data.path=x.npy"], "needs generated data"),
    (["train.flow_supervision_weight=1", "train.rollout_horizon=2"], "not with rollout"),
    (["train.flow_supervision_weight=-1"], "train.flow_supervision_weight"),
])
def test_bad_settings_are_one_line_errors(sets, message):
    with pytest.raises(StaeError, match=message):
        load_config(None, sets)
