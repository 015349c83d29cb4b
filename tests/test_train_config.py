"""Config parsing of `stae train`: files (YAML/TOML), --set overrides, recipes, clear errors."""

from __future__ import annotations

import math

import pytest

from stae.cli import main
from stae.errors import StaeError
from stae.training import load_config, resolve
from stae.training.recipes import learning_rate

def test_defaults_and_recipe_layering(tmp_path):
    cfg = load_config(None, [])
    assert cfg.train.recipe == "fast" and cfg.model.encoder_channels == (32,)
    paper = load_config(None, ["train.recipe=paper"])
    t = paper.train
    assert (t.optimizer, t.lr, t.alpha, t.eps, t.batch_size, t.grad_clip, t.grad_clip_value, t.loss_steps) == \
        ("rmsprop", 1e-4, 0.9, 1e-5, 1, "value", 50.0, "last")
    assert paper.data.context == 10
    # a file value beats the recipe, an override beats the file
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  recipe: paper\n  lr: 0.001\n  batch_size: 2\n")
    cfg = load_config(f, ["train.lr=3e-4"])
    assert cfg.train.lr == 3e-4 and cfg.train.batch_size == 2 and cfg.train.optimizer == "rmsprop"


def test_dataclass_defaults_are_what_runs():
    """TrainConfig() and DataConfig() hold the fast recipe, the one a config without a recipe runs."""
    from stae.training.run_config import DataConfig, TrainConfig
    from stae.training.recipes import RECIPES

    cfg = load_config(None, [])
    assert cfg.train == TrainConfig() and cfg.data == DataConfig() and RECIPES["fast"] == {}
    assert (TrainConfig().optimizer, TrainConfig().schedule, DataConfig().val_sequences) == ("adamw", "onecycle", 500)
    assert load_config(None, ["train.recipe=paper"]).data.val_sequences == 3_000  # Sec. 4.1


def test_old_key_checkpoint_time_is_read_with_a_deprecation_line(tmp_path):
    f = tmp_path / "old.yaml"
    f.write_text("model:\n  checkpoint_time: true\n")
    with pytest.warns(FutureWarning, match="model.checkpoint_time is now model.recompute_steps"):
        cfg = load_config(f, [])
    assert cfg.model.recompute_steps and "checkpoint_time" not in cfg.to_yaml()
    with pytest.raises(StaeError, match="same option"):
        load_config(f, ["model.recompute_steps=false"])


def test_toml_and_model_preset(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[model]\npreset = "conv-2enc-1lstm"\nreleased_code = true\n[train]\nlr = 0.002\n')
    cfg = load_config(f)
    assert cfg.model.encoder_channels == (16, 32) and cfg.model.flow_clamp == 7.75 and cfg.model.forget_bias == 0.0
    assert cfg.train.lr == 0.002


def test_resolved_yaml_round_trips(tmp_path):
    cfg = load_config(None, ["model.encoder_channels=[8]", "data.binary=true", "model.output=sigmoid"])
    import yaml
    again = resolve(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


@pytest.mark.parametrize("override, needle", [
    (["train.lrr=1"], "train.lrr"),
    (["train.lr=fast"], "'train.lr'"),
    (["train.batch_size=2.5"], "'train.batch_size'"),
    (["model.encoder_channels=abc"], "'model.encoder_channels'"),
    (["model.bogus=1"], "model.bogus"),
    (["optim.lr=1"], "'optim'"),
    (["train.recipe=slow"], "'train.recipe'"),
    (["train.optimizer=lbfgs"], "'train.optimizer'"),
    (["log.tensorboard=3"], "'log.tensorboard'"),
    (["train.amp=off"], "quote the value"),
    (["data.source=file"], "'data.path'"),
    (["data.binary=true"], "model.output"),  # BCE needs a sigmoid output
    (["lr=3"], "section.key"),
])
def test_bad_config_names_the_key(override, needle):
    with pytest.raises(StaeError) as e:
        load_config(None, override)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train: [1, 2\n")
    with pytest.raises(StaeError, match="bad.yaml"):
        load_config(f)
    f.write_text("train:\n  epochs: many\n")
    with pytest.raises(StaeError, match="'train.epochs'"):
        load_config(f)
    with pytest.raises(StaeError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_cli_exit_code_2_on_bad_config(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  warmup: 3\n")
    out = tmp_path / "run"
    assert main(["train", str(f), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stae: error:") and "train.warmup" in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert main(["train", "--set", "train.lr=-1", "--out", str(out)]) == 2


def test_print_config(capsys):
    assert main(["train", "--recipe", "paper", "--set", "train.lr=2e-4", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "recipe: paper" in out and "lr: 0.0002" in out


def test_learning_rate_schedules():
    paper = load_config(None, ["train.recipe=paper"]).train
    # Sec. 4: eta = 1e-4 (0.5^(1/100))^epoch -> halves every 100 epochs
    assert learning_rate(paper, 0, 10, 10**6) == 1e-4
    assert math.isclose(learning_rate(paper, 100 * 10, 10, 10**6), 0.5e-4)
    assert learning_rate(paper, 9, 10, 10**6) == 1e-4
    fast = load_config(None, ["train.recipe=fast", "train.lr=1e-3"]).train
    lrs = [learning_rate(fast, s, 10, 100) for s in range(100)]
    assert math.isclose(lrs[0], 1e-3 / 25) and math.isclose(max(lrs), 1e-3) and lrs[-1] < 1e-5
    cos = load_config(None, ["train.schedule=cosine", "train.lr=1", "train.warmup_steps=4"]).train
    assert [learning_rate(cos, s, 10, 100) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
