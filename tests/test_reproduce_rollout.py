"""scripts/reproduce.py's ``rollout`` stage (issue 15) on a faked run: ships rollout-mmnist into
quick mode's weights folder, scores it by OpenSTL's and VPN's protocols, renders the section."""

import json

import torch
import yaml

from stae.weights import load_model, read_metadata
from tests.helpers import fake_run, quick


def test_rollout_stage_ships_and_scores_a_run(tmp_path):
    run = fake_run(tmp_path / "runs", "rollout-mmnist")
    (run / "resolved.yaml").write_text(yaml.safe_dump({"train": {"init_weights": "vanilla-mmnist"}}))
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
