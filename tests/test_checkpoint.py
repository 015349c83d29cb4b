"""Checkpoint files: safetensors with the config inside; clear errors for bad files."""

import pytest
import torch
from safetensors.torch import save_file

from stae.weights import load_model, resolve_checkpoint, save_model
from stae.cli import main
from stae.errors import StaeError
from stae.model import build_model
from tests.helpers import tiny_config


def test_round_trip_restores_config_and_outputs(tmp_path):
    model = build_model(tiny_config(memory_channels=(3, 4), output="sigmoid"))
    path = save_model(tmp_path / "run" / "step-000001" / "model.safetensors", model)
    loaded = load_model(tmp_path / "run")  # a run dir resolves to its newest step
    assert loaded.config == model.config and not loaded.training
    clip = torch.rand(1, 3, 1, 8, 8)
    assert torch.equal(model(clip).frames, loaded(clip).frames)
    assert resolve_checkpoint(path.parent) == path
    assert not list(path.parent.glob(".*tmp"))  # no temporary file left behind


def test_truncated_foreign_and_missing_files(tmp_path):
    good = save_model(tmp_path / "m.safetensors", build_model(tiny_config()))
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(StaeError, match="truncated.safetensors.*truncated or corrupt"):
        load_model(bad)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(StaeError, match="not a stae checkpoint"):
        load_model(foreign)
    with pytest.raises(StaeError, match="checkpoint not found"):
        load_model(tmp_path / "nope")
    with pytest.raises(StaeError, match="no checkpoint in"):
        load_model(tmp_path)
    assert main(["info", str(bad)]) == 2


@pytest.mark.parametrize("new_format", [True, False])
def test_a_torch_save_file_is_named_as_such(tmp_path, new_format):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, path, _use_new_zipfile_serialization=new_format)
    with pytest.raises(StaeError, match="model.pt: a torch.save file, not a stae checkpoint"):
        load_model(path)


def test_info_prints_table(capsys):
    assert main(["info", "conv-1enc-1lstm"]) == 0
    out = capsys.readouterr().out
    for figure in ("1,600", "1,569", "679,320", "21,162", "703,651", "exact"):
        assert figure in out
    assert main(["info", "no-such-model"]) == 2
