"""stae export: the TorchScript / ONNX streaming step equals eager PyTorch frame by frame."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stae.weights import save_model
from stae.cli import main
from stae.model.config import ModelConfig
from stae.export import StreamingStep, export_model, initial_state, io_names, state_shapes
from stae.model import build_model

# Two memory layers of different widths, so a mix-up in the state order cannot pass.
TINY = dict(encoder_channels=(4,), memory_channels=(4, 3), flow_kernel=3, spatial_kernel=3, memory_kernel=3,
            flow_1x1=False)


FC = dict(encoder_channels=(4,), memory="fc", fc_hidden=(32, 64), fc_frame_size=(16, 16), flow_kernel=3,
          spatial_kernel=3, flow_1x1=False)


# The exact performance options (FFT convolutions, sub-pixel decoder): the export runs the
# direct convolutions, which must give the eager FFT model's numbers (here with the border sampler).
FAST = dict(TINY, fft_conv=True, subpixel_decoder=True, warp_padding="border")


# Block matching carries the last frame in the state (autoencoder.State): one more pair.
MATCHING = dict(TINY, block_matching=True, matching_radius=1, matching_window=3, matching_refine=1, matching_skip=True,
                head="image")


@pytest.fixture(scope="module", params=["conv", "fc", "fast", "matching"])
def model(request):
    torch.manual_seed(0)
    return build_model(ModelConfig(**{"conv": TINY, "fc": FC, "fast": FAST, "matching": MATCHING}[request.param])).eval()


def eager_outputs(model, clip):
    outs, state = [], None
    with torch.no_grad():
        for f in clip:
            pred, flow, state = model.step(f, state)
            outs.append((pred, flow))
    return outs


def test_wrapper_state_is_explicit_and_starts_at_zero(model):
    if model.config.block_matching:
        assert state_shapes(model, 1, 16, 16) == [(1, 4, 8, 8), (1, 3, 8, 8), (1, 1, 16, 16)] + \
            [(1, 4, 8, 8), (1, 3, 8, 8), (1, 1, 1, 1)]
        assert io_names(model)[0] == ["frame", "h0", "h1", "last_frame", "c0", "c1", "last_frame_real"]
    elif model.config.memory == "conv":
        assert state_shapes(model, 1, 16, 16) == [(1, 4, 8, 8), (1, 3, 8, 8)] * 2
    else:
        assert state_shapes(model, 1, 16, 16) == [(1, 32), (1, 64)] * 2
    if not model.config.block_matching:
        assert io_names(model) == (["frame", "h0", "h1", "c0", "c1"],
                                   ["pred", "flow", "h0_out", "h1_out", "c0_out", "c1_out"])
    clip = torch.rand(3, 1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    step, state = StreamingStep(model), initial_state(model, 1, 16, 16)
    for (pred, flow), f in zip(eager_outputs(model, clip), clip):
        out = step(f, *state)
        state = list(out[2:])
        assert torch.equal(out[0], pred) and torch.equal(out[1], flow)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_equals_eager(model, tmp_path):
    path = export_model(model, tmp_path / "m.pt", "torchscript", size=(16, 16))
    extra = {"stae.json": ""}
    ts = torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra["stae.json"])
    assert meta["inputs"][0] == "frame" and meta["stae_model_config"] == json.loads(model.config.to_json())
    clip = torch.rand(5, 1, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    state = initial_state(model, 1, 16, 16)
    with torch.no_grad():
        for (pred, flow), f in zip(eager_outputs(model, clip), clip):
            out = ts(f, *state)
            state = list(out[2:])
            torch.testing.assert_close(out[0], pred, atol=1e-5, rtol=0)
            torch.testing.assert_close(out[1], flow, atol=1e-5, rtol=0)


def test_onnx_equals_eager(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = export_model(model, tmp_path / "m.onnx", "onnx", size=(16, 16))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ins, outs = io_names(model)
    assert [i.name for i in sess.get_inputs()] == ins and [o.name for o in sess.get_outputs()] == outs
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["first_frame_state"]) == "zeros"
    clip = torch.rand(5, 1, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    state = [s.numpy() for s in initial_state(model, 1, 16, 16)]
    for (pred, flow), f in zip(eager_outputs(model, clip), clip):
        out = sess.run(None, dict(zip(ins, [f.numpy(), *state])))
        state = out[2:]
        np.testing.assert_allclose(out[0], pred.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(out[1], flow.numpy(), atol=1e-5, rtol=0)


def test_cli_export_and_bad_input(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY))
    ckpt = save_model(tmp_path / "m.safetensors", model)
    out = tmp_path / "m.pt"
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(out), "--size", "16x16"]) == 0
    assert "h1 [1, 3, 8, 8]" in capsys.readouterr().out
    before = out.read_bytes()
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(out), "--size", "16x16"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "x.onnx"), "--size", "15x16"]) == 2
    err = capsys.readouterr().err
    assert "divisible by 2" in err and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()
