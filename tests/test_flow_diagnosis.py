"""scripts/flow_diagnosis.py: exact values where the flow is known."""

import importlib.util
import sys
from pathlib import Path

import torch

from stae.model import build_model
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("flow_diagnosis", ROOT / "scripts" / "flow_diagnosis.py")
fd = importlib.util.module_from_spec(spec)
sys.modules["flow_diagnosis"] = fd
spec.loader.exec_module(fd)


def test_identity_flow_never_leaves_the_map():
    torch.manual_seed(0)
    res = fd.diagnose(build_model(tiny_config()), sequences=2)  # Theta's 1x1 conv starts at zero
    assert res["samples_off_the_map"] == 0 and res["flow_median_px_on_digits"] == 0
    assert res["bce"] == res["bce_zero_flow"] == res["bce_sampler_reads_border"] == res["bce_sampler_reads_zeros"]
    assert res["epe_px_on_digits"] > 0  # zero flow: the true motion's mean length


def test_a_flow_off_the_map_reads_zeros_or_border():
    torch.manual_seed(0)
    model = build_model(tiny_config())
    with torch.no_grad():
        model.flow.net[-1].bias.fill_(100.0)
        for p in model.encoder.parameters():  # background features tanh(bias) != 0, so border != zeros
            p.add_(0.3)
    res = fd.diagnose(model, sequences=2)
    assert res["samples_off_the_map"] == 1.0 and res["flow_median_px_on_digits"] > 100
    assert res["bce"] == res["bce_sampler_reads_zeros"] != res["bce_sampler_reads_border"]


def test_cli_bad_checkpoint(capsys):
    assert fd.main(["/nonexistent/model.safetensors"]) == 2
    assert "flow_diagnosis: error:" in capsys.readouterr().err
