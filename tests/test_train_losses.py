"""The training loss takes the right model outputs for every loss name."""

import pytest
import torch

from stae.model import build_model
from stae.model.flow import huber_smoothness
from stae.training.run_config import load_config
from stae.training.loop import clip_loss, loss_weights
from tests.helpers import tiny_config


@pytest.mark.parametrize("loss,binary,terms", [
    ("auto", True, {"bce", "huber"}),
    ("eq5", False, {"intensity", "gradient", "huber"}),
    ("intensity", False, {"intensity", "huber"}),
    ("gradient", False, {"gradient", "huber"}),
    ("released", False, {"gradient"}),
])
def test_clip_loss_terms_use_the_named_outputs(loss, binary, terms):
    overrides = [f"train.loss={loss}", f"data.binary={str(binary).lower()}", "data.context=3",
                 "train.loss_steps=all", "train.loss_warmup=0"] + (["model.output=sigmoid"] if binary else [])
    cfg = load_config(overrides=overrides)
    model = build_model(tiny_config(output="sigmoid" if binary else "linear"))
    for p in model.flow.parameters():  # a non-zero flow, so the Huber term is not trivially 0
        torch.nn.init.normal_(p, std=0.5)
    clip = torch.rand(2, 4, 1, 8, 8)
    if binary:
        clip = clip.round()
    got, out = clip_loss(model, clip, cfg, loss_weights(cfg))
    assert set(got) - {"total"} == terms
    if "huber" in terms:
        expect = huber_smoothness(out.flows.flatten(0, 1))
        assert torch.isclose(got["huber"], expect) and expect > 0
    if "bce" in terms:
        expect = torch.nn.functional.binary_cross_entropy(out.frames, clip[:, 1:4])
        assert torch.isclose(got["bce"], expect)
    got["total"].backward()


@pytest.mark.parametrize("loss,huber", [("eq5", 0.5), ("bce", 0.5), ("intensity", 0.5), ("released", 0.0)])
def test_huber_weight_is_w_h(loss, huber):
    cfg = load_config(overrides=[f"train.loss={loss}", "train.huber_weight=0.5", "model.output=sigmoid"])
    assert loss_weights(cfg).huber == huber  # released has no Huber term, whatever the weight
    assert loss_weights(load_config(overrides=[f"train.loss={loss}", "model.output=sigmoid"])).huber == (
        0.0 if loss == "released" else 1e-2)  # the paper's w_H by default
