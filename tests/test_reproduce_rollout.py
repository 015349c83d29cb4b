"""scripts/reproduce.py's ``rollout`` stage (issue 15) on a faked run: ships rollout-mmnist into
quick mode's weights folder, scores it by OpenSTL's and VPN's protocols, renders the section."""

import json

import torch

from stae.model import SpatioTemporalAutoencoder
from stae.weights import load_model, read_metadata, save_model
from tests.helpers import fake_run, quick, tiny_config


def test_rollout_stage_ships_and_scores_a_run(tmp_path):
    run = fake_run(tmp_path / "runs", "rollout-mmnist")
    summary = json.loads((run / "result.json").read_text())  # as stae.training.summary writes a rollout run's
    (run / "result.json").write_text(json.dumps({**summary, "rollout": {"init_weights": "vanilla-mmnist"}}))
    quick(tmp_path, "--stages", "rollout")
    out = tmp_path / "results"
    ro = json.loads((out / "rollout.json").read_text())
    m = ro["metrics"]
    assert m["mse_per_frame"] > 0 and m["mae_per_frame"] > 0 and m["nats_per_frame"] > 0
    assert set(ro["baselines"]) == {"copy_last", "dis"} and ro["test_set"]["seed"] == 2
    assert ro["pretraining"]["init_weights"] == "vanilla-mmnist" and ro["pretraining"]["training"]["minutes"] > 60
    assert ro["total_minutes"] == ro["training"]["minutes"] + ro["pretraining"]["training"]["minutes"]
    path = out / "weights" / "rollout-mmnist.safetensors"  # quick mode: never the package's folder
    assert ro["shipped"]["bytes"] == path.stat().st_size and ro["shipped"]["checkpoint_step"] == 2
    x = torch.rand(1, 3, 1, 16, 16)
    assert torch.equal(load_model(path)(x).frames, load_model(run)(x).frames)
    assert read_metadata(path)["stae_name"] == "rollout-mmnist"
    text = (out / "results.md").read_text()
    assert "## Ten frames ahead: rollout-mmnist (issue 15)" in text
    assert "| Pătrăucean et al. (this paper) (VPN's table" in text and "| OpenSTL ConvLSTM (published) | 15,000,000 |" in text
    assert 0 < ro["nats_lower_bound"] < m["nats_per_frame"] and "| lower bound: the true frames" in text
    # a cached evaluation from older metric definitions is scored again, not reused
    (cache,) = run.glob("eval-rollout-*.json")
    stale = json.loads(cache.read_text())
    stale["protocol"]["metrics_version"] = 1
    stale["results"]["model"]["mse_per_frame"] = -1.0
    cache.write_text(json.dumps(stale))
    quick(tmp_path, "--stages", "rollout", "--force")
    assert json.loads((out / "rollout.json").read_text())["metrics"]["mse_per_frame"] == m["mse_per_frame"]


# The training summary a shipped weights file carries in its metadata (scripts/reproduce.py ship_weights).
SHIPPED_TRAINING = {"preset": "conv-1enc-1lstm", "updates": 4, "batch_size": 2, "sequences_seen": 8, "clip_frames": 20,
                    "minutes": 3.0, "best_step": 4}


def test_without_runs_the_rollout_and_openstl_stages_score_the_shipped_weights(tmp_path):
    """--no-train, no run directories: the weights in the weights folder stand in for the runs
    (their metadata hold the training summary); nothing is re-shipped."""
    weights = tmp_path / "results" / "weights"
    for name in ("rollout-mmnist", "vanilla-mmnist"):
        save_model(weights / f"{name}.safetensors", SpatioTemporalAutoencoder(tiny_config(output="sigmoid")),
                   {"stae_name": name, "stae_training": json.dumps(SHIPPED_TRAINING)})
    before = {p.name: p.read_bytes() for p in weights.iterdir()}
    quick(tmp_path, "--stages", "rollout", "openstl")
    out = tmp_path / "results"
    ro = json.loads((out / "rollout.json").read_text())
    assert ro["stand_in"] == str(weights / "rollout-mmnist.safetensors") and ro["shipped"]["checkpoint_step"] == 4
    assert ro["pretraining"] == {"init_weights": None, "training": None} and ro["total_minutes"] == 3.0
    assert {"ssim_openstl", "psnr_openstl", "nats_per_frame"} <= set(ro["metrics"])
    assert {p.name: p.read_bytes() for p in weights.iterdir()} == before
    os_ = json.loads((out / "openstl.json").read_text())["models"]
    assert os_["t2-vanilla-flow"]["stand_in"] == str(weights / "vanilla-mmnist.safetensors")
    assert os_["t2-vanilla-flow"]["training"]["sequences_seen"] == 8 and os_["t3-both"]["status"] == "not yet run"
    text = (out / "results.md").read_text()
    assert "was trained from a fresh start by rollout training" in text and "scored from these shipped weights" in text
    assert "(scored from its shipped weights, " in text


def test_a_stand_in_keeps_the_machine_of_the_same_weights_from_the_previous_json(tmp_path):
    """Weights' metadata omit the machine a run trained on; re-scoring the same file keeps it from
    the stage's previous JSON, and other weights do not inherit it."""
    weights = tmp_path / "results" / "weights" / "rollout-mmnist.safetensors"
    meta = {"stae_name": "rollout-mmnist", "stae_training": json.dumps(SHIPPED_TRAINING)}
    save_model(weights, SpatioTemporalAutoencoder(tiny_config(output="sigmoid")), meta)
    quick(tmp_path, "--stages", "rollout")
    path = tmp_path / "results" / "rollout.json"
    ro = json.loads(path.read_text())
    assert "machine" not in ro["training"]
    ro["training"]["machine"] = {"cpu": "the training machine"}
    path.write_text(json.dumps(ro))
    quick(tmp_path, "--stages", "rollout", "--force")
    assert json.loads(path.read_text())["training"]["machine"] == {"cpu": "the training machine"}
    torch.manual_seed(1)
    save_model(weights, SpatioTemporalAutoencoder(tiny_config(output="sigmoid")), meta)  # other weights
    quick(tmp_path, "--stages", "rollout", "--force")
    assert "machine" not in json.loads(path.read_text())["training"]
