"""Hub conventions: stae.hub (save_pretrained / from_pretrained on config.json +
model.safetensors, needs the `hub` extra) and hubconf.py (torch.hub, source='local').
Local directories only: nothing is downloaded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stae.weights import load_model
from stae.errors import StaeError
from stae.model import build_model
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub(monkeypatch):
    pytest.importorskip("huggingface_hub")
    import stae.hub

    def no_download(*args, **kwargs):
        raise AssertionError(f"a test tried to download: {args} {kwargs}")

    monkeypatch.setattr(stae.hub, "hf_hub_download", no_download)
    return stae.hub


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_and_load_pretrained_round_trip(hub, tmp_path):
    model = build_model(tiny_config(output="sigmoid")).eval()
    out = hub.save_pretrained(model, tmp_path / "m")
    assert {"config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}
    assert (out / "config.json").read_text() == model.config.to_json()  # the checkpoint layout's bytes
    loaded = hub.HubAutoencoder.from_pretrained(out)
    assert isinstance(loaded, hub.HubAutoencoder) and not loaded.training
    assert loaded.config == model.config and _same_weights(loaded, model)
    clip = torch.rand(1, 3, 1, 16, 16)
    torch.testing.assert_close(loaded(clip).frames, model(clip).frames, rtol=0, atol=0)
    # The saved directory is also a plain stae checkpoint (weights carry the config).
    assert _same_weights(load_model(out), model)


def test_from_pretrained_reads_a_training_checkpoint_directory(hub, tmp_path):
    from stae.training.run_dir import write_checkpoint

    model = build_model(tiny_config())
    ckpt = write_checkpoint(tmp_path / "run", "best", model, state=None)
    loaded = hub.from_pretrained(ckpt)
    assert loaded.config == model.config and _same_weights(loaded, model)


def test_shipped_model_converts_and_reloads(hub, tmp_path):
    shipped = load_model("vanilla-mmnist")
    hub.to_hub(shipped).save_pretrained(tmp_path / "vanilla")
    assert _same_weights(hub.from_pretrained(tmp_path / "vanilla"), shipped)


def test_config_json_and_weights_that_disagree_are_a_clear_error(hub, tmp_path):
    hub.save_pretrained(build_model(tiny_config()), tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["memory_channels"] = [7]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(StaeError, match="the weights do not match config.json"):
        hub.from_pretrained(tmp_path / "m")
    cfg["no_such_key"] = 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(StaeError, match="config.json: not a stae model config"):
        hub.from_pretrained(tmp_path / "m")


def test_missing_config_json_falls_back_to_the_weights_metadata(hub, tmp_path):
    model = build_model(tiny_config())
    hub.save_pretrained(model, tmp_path / "m")
    os.remove(tmp_path / "m" / "config.json")
    assert _same_weights(hub.from_pretrained(tmp_path / "m"), model)


def test_base_package_does_not_import_huggingface_hub():
    code = "import sys, stae, stae.cli, stae.zoo; print('huggingface_hub' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


HUBCONF_SCRIPT = r"""
import importlib.util, sys, torch
src = sys.argv[1] + "/src"
sys.path[:] = [p for p in sys.path if p.rstrip("/") != src]   # hide an installed stae
assert importlib.util.find_spec("stae") is None, "stae importable without hubconf's path"
model = torch.hub.load(sys.argv[1], "vanilla_mmnist", source="local", trust_repo=True)
import stae
fresh = torch.hub.load(sys.argv[1], "stae_model", "conv-2enc-1lstm", source="local")
print(type(model).__name__, sum(p.numel() for p in model.parameters()), model.training,
      stae.__file__.startswith(src), sum(p.numel() for p in fresh.parameters()))
"""


def test_hubconf_loads_the_shipped_model_from_the_src_layout(tmp_path):
    hubconf = ROOT / "hubconf.py"
    if not hubconf.is_file():
        pytest.skip("no hubconf.py (installed package without the repository)")
    out = subprocess.run([sys.executable, "-c", HUBCONF_SCRIPT, str(ROOT)], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "TORCH_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["SpatioTemporalAutoencoder", "703651", "False", "True", "1285995"]
