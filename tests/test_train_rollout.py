"""Rollout training (train.rollout_*; training/rollout.py): schedules, deterministic scheduled
sampling, K = 1 equals next-frame training, fed-back inputs, resume, init_weights, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stae.errors import StaeError
from stae.model.autoencoder import SpatioTemporalAutoencoder
from stae.training import resolve, train
from stae.training.loop import clip_loss, loss_weights, train_step
from stae.training.recipes import make_optimizer
from stae.training.rollout import feed_truth_mask, horizon_at, rollout_clip_loss, truth_probability
from stae.training.run_config import clip_frames
from stae.training.run_dir import read_metrics
from stae.weights import load_model, save_model
from tests.helpers import tiny_config, tiny_raw, write_tiny_clips


@pytest.fixture()
def data(tmp_path):
    return write_tiny_clips(tmp_path / "clips.npy", n=16, t=8)


def rollout_cfg(data, **train):
    t = {"rollout_horizon": 3, "loss": "intensity", **train}
    return resolve(tiny_raw(data, train=t, data={"context": 4}))


def test_horizon_curriculum_and_truth_schedule(data):
    t = rollout_cfg(data, rollout_horizon=4, rollout_curriculum_steps=8, rollout_sampling_steps=10,
                    rollout_truth_start=1.0, rollout_truth_end=0.2).train
    assert [horizon_at(t, s) for s in range(0, 12)] == [1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4]
    assert truth_probability(t, 0) == 1.0 and truth_probability(t, 5) == pytest.approx(0.6)
    assert truth_probability(t, 10) == pytest.approx(0.2) and truth_probability(t, 99) == pytest.approx(0.2)
    t0 = rollout_cfg(data).train  # no curriculum, no sampling schedule: K_max, always predictions
    assert horizon_at(t0, 0) == 3 and truth_probability(t0, 0) == 0.0
    assert clip_frames(rollout_cfg(data)) == 7 and clip_frames(resolve(tiny_raw(data))) == 5


def test_sampling_is_a_function_of_seed_and_step(data):
    t = rollout_cfg(data, rollout_horizon=6, rollout_sampling_steps=100, rollout_truth_start=1.0,
                    rollout_truth_end=0.0).train
    a, b = feed_truth_mask(t, 50, 64), feed_truth_mask(t, 50, 64)
    assert a.shape == (64, 5) and a.dtype == torch.bool and torch.equal(a, b)
    assert 0.3 < a.float().mean() < 0.7  # p = 0.5 at step 50
    assert not torch.equal(a, feed_truth_mask(t, 51, 64))
    assert feed_truth_mask(t, 0, 8).all() and not feed_truth_mask(t, 100, 8).any()
    # two ranks take the contiguous halves of the global draw
    halves = torch.cat([feed_truth_mask(t, 50, 64, r, 2) for r in range(2)])
    assert torch.equal(halves, a)


def test_k1_without_sampling_equals_next_frame_loss(data):
    base = resolve(tiny_raw(data, train={"loss": "eq5", "loss_warmup": 1}, data={"context": 4}))
    roll = resolve(tiny_raw(data, train={"loss": "eq5", "loss_warmup": 1, "rollout_horizon": 1},
                            data={"context": 4}))
    torch.manual_seed(0)
    model = SpatioTemporalAutoencoder(base.model)
    clip = torch.rand(2, 5, 1, 16, 16)
    a, _ = clip_loss(model, clip, base, loss_weights(base))
    b, _ = rollout_clip_loss(model, clip, roll, loss_weights(roll), step=0)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("feedback", ["frames", "features"])
def test_fed_back_inputs_are_predictions_or_truth(feedback):
    torch.manual_seed(0)
    model = SpatioTemporalAutoencoder(tiny_config(output="sigmoid", rollout_feedback=feedback)).double()
    clip = torch.rand(2, 6, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        fed = model.run_fed_back(clip[:, :3], clip[:, 3:5], torch.zeros(2, 2, dtype=torch.bool))
        roll = model.rollout(clip[:, :3], 3)  # evaluation's rollout: predictions fed back
        assert torch.allclose(fed.logits[:, 2:], roll.logits, atol=1e-12)
        truth = model.run_fed_back(clip[:, :3], clip[:, 3:5], torch.ones(2, 2, dtype=torch.bool))
        assert torch.allclose(truth.logits, model(clip[:, :5]).logits, atol=1e-12)  # teacher forcing
        mixed = model.run_fed_back(clip[:, :3], clip[:, 3:5], torch.tensor([[True, True], [False, False]]))
        assert torch.allclose(mixed.logits[0], truth.logits[0], atol=1e-12)
        assert torch.allclose(mixed.logits[1, 2:], roll.logits[1], atol=1e-12)


def test_feature_feedback_is_the_warped_features():
    """rollout_feedback="features": after the first prediction, the memory and the head read the
    features the decoder drew the previous prediction from (x warped by its flow), not E of it."""
    from stae.model.warp import warp

    torch.manual_seed(0)
    model = SpatioTemporalAutoencoder(tiny_config(rollout_feedback="features")).double()
    clip = torch.rand(2, 3, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        roll = model.rollout(clip, 3)
        out, state = model.run(clip)
        x, flow, logits = model.encoder(clip[:, -1]), out.flows[:, -1], [out.logits[:, -1]]
        for _ in range(2):
            x = warp(x, flow, model.config.warp_padding)
            m, state = model.memory(x, state)
            lg, flow = model.head(x, m)
            logits.append(lg)
        assert torch.allclose(roll.logits, torch.stack(logits, 1), atol=1e-12)
        frames = SpatioTemporalAutoencoder(tiny_config()).double()
        frames.load_state_dict(model.state_dict())
        assert not torch.allclose(frames.rollout(clip, 3).logits[:, 1:], roll.logits[:, 1:])


@pytest.mark.parametrize("kw", [{"head": "image"}, {"block_matching": True}])
def test_feature_feedback_needs_the_features_head_without_matching(kw):
    with pytest.raises(ValueError, match="rollout_feedback='features'"):
        tiny_config(rollout_feedback="features", output="linear", **kw).validate()


def test_feedback_gradient_option():
    """With detach, the fed-back prediction passes no gradient: the last step's loss reaches the
    decoder's weights only through its own output, so the decoder gradients differ."""
    clip = torch.rand(1, 5, 1, 8, 8)

    def decoder_grad(detach):
        torch.manual_seed(0)
        model = SpatioTemporalAutoencoder(tiny_config()).double()
        out = model.run_fed_back(clip[:, :3].double(), clip[:, 3:4].double(), torch.zeros(1, 1, dtype=torch.bool),
                                 detach=detach)
        out.frames[:, 3].sum().backward()
        return torch.cat([p.grad.flatten() for p in model.decoder.parameters()]), model, out

    g_on, _, _ = decoder_grad(False)
    g_off, model, out = decoder_grad(True)
    assert not torch.allclose(g_on, g_off)
    # detached: equal to a step fed with a constant copy of the prediction
    model.zero_grad()
    pred = out.frames[:, 2].detach()
    again = model.run_fed_back(clip[:, :3].double(), pred[:, None], torch.ones(1, 1, dtype=torch.bool))
    again.frames[:, 3].sum().backward()
    assert torch.allclose(torch.cat([p.grad.flatten() for p in model.decoder.parameters()]), g_off)


def test_rollout_training_step_changes_weights_and_validates(data, tmp_path):
    cfg = rollout_cfg(data, max_steps=3, rollout_curriculum_steps=2, rollout_sampling_steps=2)
    res = train(cfg, tmp_path / "run")
    assert res.step == 3 and res.last_val is not None and np.isfinite(res.last_val)
    kinds = {r["kind"] for r in read_metrics(tmp_path / "run")}
    assert {"train", "val"} <= kinds


def test_rollout_resume_equals_uninterrupted(data, tmp_path):
    cfg = rollout_cfg(data, max_steps=8, rollout_curriculum_steps=4, rollout_sampling_steps=6,
                      rollout_truth_start=0.8)
    train(cfg, tmp_path / "full")
    train(cfg, tmp_path / "part", stop_after=3)
    train(cfg, tmp_path / "part", resume=True)

    def losses(d):
        return {r["step"]: r["loss"] for r in read_metrics(d) if r["kind"] == "train"}

    assert losses(tmp_path / "full") == losses(tmp_path / "part") and len(losses(tmp_path / "full")) == 8
    a = load_model(tmp_path / "full" / "step-0000008").state_dict()
    b = load_model(tmp_path / "part" / "step-0000008").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("feedback", ["frames", "features"])
def test_init_weights_starts_from_a_saved_model(data, tmp_path, feedback):
    """The starting model feeds back frames; the run may feed back either (same weights)."""
    cfg = rollout_cfg(data, max_steps=1)
    torch.manual_seed(5)
    src = SpatioTemporalAutoencoder(cfg.model)
    path = save_model(tmp_path / "start.safetensors", src)
    raw = tiny_raw(data, train={"rollout_horizon": 3, "loss": "intensity", "max_steps": 1, "init_weights": str(path),
                                "lr": 1e-12, "grad_clip": "norm"},
                   data={"context": 4}, model={"rollout_feedback": feedback})
    cfg2 = resolve(raw)
    train(cfg2, tmp_path / "run")
    got = load_model(tmp_path / "run" / "step-0000001").state_dict()
    for k, v in src.state_dict().items():
        assert torch.allclose(got[k], v, atol=1e-6), k
    other = save_model(tmp_path / "other.safetensors", SpatioTemporalAutoencoder(tiny_config(memory_channels=(5,))))
    with pytest.raises(StaeError, match="train.init_weights.*memory_channels"):
        train(rollout_cfg(data, init_weights=str(other)), tmp_path / "bad")


@pytest.mark.parametrize("key,value,msg", [
    ("rollout_horizon", -1, "rollout_horizon"), ("rollout_truth_start", 1.5, "rollout_truth_start"),
    ("rollout_sampling_steps", -2, "rollout_sampling_steps")])
def test_rollout_config_errors_name_the_key(data, key, value, msg):
    with pytest.raises(StaeError, match=msg):
        rollout_cfg(data, **{key: value})


def test_rollout_horizon_must_fit_the_sequences():
    with pytest.raises(StaeError, match="train.rollout_horizon.*num_frames"):
        resolve({"data": {"source": "moving_mnist", "num_frames": 15}, "train": {"rollout_horizon": 10}})


def test_train_step_uses_rollout_loss(data):
    cfg = rollout_cfg(data)
    torch.manual_seed(0)
    model = SpatioTemporalAutoencoder(cfg.model)
    opt = make_optimizer(model.parameters(), cfg.train)
    clip = torch.rand(2, 7, 1, 16, 16)
    losses, out = train_step(model, opt, clip, cfg, loss_weights(cfg), 0, 1e-3)
    assert out.frames.shape[1] == 6  # 4 context steps + 2 fed back
