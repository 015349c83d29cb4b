"""The model zoo (stae.zoo, `stae models`): cards read from the weights files themselves, and
docs/model_zoo.md kept in step with them."""

import hashlib
import json
from pathlib import Path

from stae.weights import save_model, shipped_models
from stae.cli import main
from stae.model import build_model
from stae.zoo import MISSING, model_card, model_cards
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def test_docs_model_zoo_is_generated_from_the_shipped_files(capsys):
    assert main(["models", "--markdown"]) == 0
    generated = capsys.readouterr().out
    on_disk = (ROOT / "docs" / "model_zoo.md").read_text(encoding="utf-8")
    assert generated == on_disk, "docs/model_zoo.md is stale: run `stae models --markdown > docs/model_zoo.md`"


def test_every_shipped_model_has_a_card_with_its_own_facts():
    cards = model_cards()
    assert [c["file"] for c in cards] == [p.name for p in shipped_models().values()]
    for card, path in zip(cards, shipped_models().values()):
        assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert card["size"] == f"{path.stat().st_size / 1e6:.2f} MB"
    vanilla = next(c for c in cards if c["name"] == "vanilla-mmnist")
    # The parameter count is the paper's vanilla model (Table 1), from the file's tensors.
    assert vanilla["parameters"] == "703,651" == f"{sum(p.numel() for p in build_model('conv-1enc-1lstm').parameters()):,}"
    assert vanilla["preset"] == "conv-1enc-1lstm"
    assert vanilla["recipe"].startswith("fast: adamw lr 0.002")
    assert vanilla["training_time"] == "71.3 min on 2 CPU threads"
    assert vanilla["scores"].startswith("validation bce 0.0591")


def test_missing_metadata_reads_dash_not_an_invented_value(tmp_path):
    path = save_model(tmp_path / "bare.safetensors", build_model(tiny_config()))
    card = model_card(path)
    assert card["name"] == "bare"
    for key in ("preset", "data", "recipe", "training_time", "scores"):
        assert card[key] == MISSING, key
    n = sum(p.numel() for p in build_model(tiny_config()).parameters())
    assert card["parameters"] == f"{n:,}"


def test_models_command_text_json_and_files(tmp_path, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rollout-mmnist\n") and "\nvanilla-mmnist\n" in out and "headline scores" in out and "703,651" in out
    path = save_model(tmp_path / "m.safetensors", build_model(tiny_config()),
                      extra_metadata={"stae_name": "mine", "stae_training": json.dumps({"recipe": "paper", "minutes": 2.0})})
    assert main(["models", "--json", str(path)]) == 0
    (card,) = json.loads(capsys.readouterr().out)
    assert card["name"] == "mine" and card["recipe"] == "paper" and card["training_time"] == "2.0 min"
    assert main(["models", "vanilla-mmnist"]) == 0  # a shipped model by name: its card alone
    out = capsys.readouterr().out
    assert out.startswith("vanilla-mmnist\n") and "rollout-mmnist" not in out and "703,651" in out
    assert main(["models", str(tmp_path / "nope.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
