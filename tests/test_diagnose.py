"""stae.diagnose and `stae diagnose`: exact values where the flow is known."""

import json

import pytest
import torch

from stae.weights import save_model
from stae.cli import main
from stae.diagnose import diagnose
from stae.errors import StaeError
from stae.model import build_model
from tests.helpers import tiny_config


def test_identity_flow_never_leaves_the_map():
    torch.manual_seed(0)
    res = diagnose(build_model(tiny_config()), sequences=2)  # Theta's 1x1 conv starts at zero
    assert res["samples_off_the_map"] == 0 and res["flow_median_px_on_digits"] == 0
    assert res["bce"] == res["bce_zero_flow"] == res["bce_sampler_reads_border"] == res["bce_sampler_reads_zeros"]
    assert res["epe_px_on_digits"] > 0  # zero flow: the true motion's mean length


def test_a_flow_off_the_map_reads_zeros_or_border():
    torch.manual_seed(0)
    model = build_model(tiny_config(memory_channels=(5,)))  # an init whose border reads differ
    with torch.no_grad():
        model.flow.net[-1].bias.fill_(100.0)
        for p in model.encoder.parameters():  # background features tanh(bias) != 0, so border != zeros
            p.add_(0.3)
    res = diagnose(model, sequences=2)
    assert res["samples_off_the_map"] == 1.0 and res["flow_median_px_on_digits"] > 100
    assert res["bce"] == res["bce_sampler_reads_zeros"] != res["bce_sampler_reads_border"]


def test_float_data_is_scored_by_squared_error_and_batches_do_not_matter():
    torch.manual_seed(0)
    model = build_model(tiny_config())
    whole = diagnose(model, sequences=3, context=5, binary=False)
    assert set(whole) == {"sequences", "warp_padding", "l2", "l2_sampler_reads_border", "l2_sampler_reads_zeros",
                          "l2_zero_flow", "flow_median_px_on_digits", "true_motion_median_px_on_digits",
                          "epe_px_on_digits", "samples_off_the_map"}
    assert whole["l2"] == whole["l2_zero_flow"]  # identity flow at initialisation
    split = diagnose(model, sequences=3, context=5, binary=False, batch_size=2)
    assert split.pop("warp_padding") == whole.pop("warp_padding")
    assert split == pytest.approx(whole, rel=1e-6)


@pytest.mark.parametrize("kw, name", [({"sequences": 0}, "sequences"), ({"sequences": 2001}, "sequences"),
                                      ({"context": 0}, "context"), ({"context": 20}, "context"),
                                      ({"batch_size": 0}, "batch_size")])
def test_bad_arguments_name_the_parameter(kw, name):
    with pytest.raises(StaeError, match=f"^{name} must be"):
        diagnose(build_model(tiny_config()), **kw)


def test_a_colour_model_is_refused_naming_the_channels():
    with pytest.raises(StaeError, match="3"):
        diagnose(build_model(tiny_config(in_channels=3)), sequences=1)


@pytest.mark.parametrize("options", [{"head": "image", "output": "linear"},
                                     {"head": "image", "output": "linear", "block_matching": True}],
                         ids=["image_head", "image_head_block_matching"])
def test_the_image_head_is_refused_in_one_line(options):
    with pytest.raises(StaeError, match="head='image'.*the sampler diagnosis decodes warped features"):
        diagnose(build_model(tiny_config(**options)), sequences=1)


def test_a_block_matching_model_is_diagnosed_through_its_own_memory_path():
    """The feature head with block matching: the memory reads the observed motion, so the
    diagnosis must run the model's path, not the memory alone (which would fail on its channels)."""
    torch.manual_seed(0)
    report = diagnose(build_model(tiny_config(block_matching=True, matching_radius=1, matching_window=3)),
                      sequences=2, context=5, binary=False, batch_size=2)
    assert report["sequences"] == 2 and report["l2"] == report["l2_zero_flow"]  # identity flow at initialisation


def test_cli_prints_and_writes_json(tmp_path, capsys):
    ckpt = save_model(tmp_path / "m.safetensors", build_model(tiny_config(output="sigmoid")))
    out = tmp_path / "d.json"
    assert main(["diagnose", str(ckpt), "--sequences", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["data"] == "binary" and res["sequences"] == 2 and res["context"] == 10  # sigmoid output: binary
    assert f"{res['bce']:.4g}" in printed and f"wrote {out}" in printed
    # an existing --out is refused (nothing computed, file untouched) unless --force
    assert main(["diagnose", str(ckpt), "--sequences", "2", "--json", str(out), "--data", "float"]) == 2
    assert "--out" in capsys.readouterr().err and json.loads(out.read_text()) == res
    assert main(["diagnose", str(ckpt), "--sequences", "2", "--out", str(out), "--data", "float", "--force"]) == 0
    assert json.loads(out.read_text())["data"] == "float" and "l2" in json.loads(out.read_text())


@pytest.mark.parametrize("args, flag", [(["--sequences", "0"], "--sequences"), (["--context", "20"], "--context"),
                                        (["--batch-size", "0"], "--batch-size")])
def test_cli_bad_flags_name_the_flag(tmp_path, capsys, args, flag):
    ckpt = save_model(tmp_path / "m.safetensors", build_model(tiny_config()))
    assert main(["diagnose", str(ckpt), *args]) == 2
    assert capsys.readouterr().err.startswith(f"stae: error: {flag}")


def test_cli_bad_checkpoint(capsys):
    assert main(["diagnose", "/nonexistent/model.safetensors"]) == 2
    assert "stae: error: checkpoint not found" in capsys.readouterr().err
