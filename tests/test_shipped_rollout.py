"""The shipped rollout-mmnist (issue 15, item 4): loadable by name, trained by rollout training,
and 10 frames ahead it beats the next-frame vanilla-mmnist it was fine-tuned from."""

import pytest
import torch

from stae.weights import load_model, metadata_json, shipped_models

pytestmark = pytest.mark.skipif("rollout-mmnist" not in shipped_models(),
                                reason="src/stae/weights/rollout-mmnist.safetensors not shipped yet "
                                       "(scripts/reproduce.py --stages rollout)")


def test_loads_by_name_with_its_training_summary():
    model = load_model("rollout-mmnist")
    assert model.config.output == "sigmoid" and sum(p.numel() for p in model.parameters()) == 703_651
    t = metadata_json("rollout-mmnist", "stae_training")
    assert t["rollout"]["rollout_horizon"] == 10 and t["rollout"]["init_weights"] == "vanilla-mmnist"
    assert t["clip_frames"] == 20 and t["sequences_seen"] > 0


def test_ten_ahead_beats_the_next_frame_model():
    from stae.data.moving_mnist import default_dataset
    from stae.metrics import mse_per_frame

    ds = default_dataset("test", num_sequences=8)
    clip = torch.stack([ds[i]["clip"] for i in range(8)])
    scores = {}
    for name in ("rollout-mmnist", "vanilla-mmnist"):
        with torch.no_grad():
            out = load_model(name).eval().rollout(clip[:, :10], 10)
        assert out.frames.shape == (8, 10, 1, 64, 64)
        scores[name] = mse_per_frame(out.frames, clip[:, 10:])
    assert scores["rollout-mmnist"] < 0.9 * scores["vanilla-mmnist"]
