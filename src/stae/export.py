"""Export the streaming step for deployment: TorchScript or ONNX (``stae export``).

The exported module is :class:`StreamingStep`, whose state is explicit tensors instead of a
Python list, so that a runtime without Python can carry it from frame to frame::

    pred, flow, h_1, ..., h_L, c_1, ..., c_L = step(frame, h_1, ..., h_L, c_1, ..., c_L)

``frame`` (B, C, H, W) in [0, 1]; ``pred`` the predicted next frame (B, C, H, W); ``flow`` the
model's BACKWARD flow ``T_t`` (B, 2, H/s, W/s) on the feature grid, in feature-grid pixels
(multiply by the stride s and upsample for image pixels; negate for forward flow). ``h_l, c_l``
are the memory state of layer l, zeros for the first frame (:func:`initial_state`): (B, d_l,
H/s, W/s) for convolutional memory, (B, n_l) for fully-connected memory. A model with
``block_matching`` carries one more pair, ``last_frame`` (B, C, H, W) and ``last_frame_real``
(B, 1, 1, 1), zeros for the first frame too (no frame yet: it is matched with itself).

The export is traced for one frame size (H, W) and batch B (``--size``, ``--batch``): the
warp's sampling grid is built for that size. Names of inputs/outputs: ``frame``, ``h0``..,
``c0``..; ``pred``, ``flow``, ``h0_out``.., ``c0_out``... The model config (JSON) and this
description travel inside the file (TorchScript ``extra_files`` / ONNX metadata).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from stae.weights import atomic_write_bytes
from stae.errors import StaeError
from stae.model.autoencoder import SpatioTemporalAutoencoder
from stae.model.config import DIRECT

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 17  # grid_sample (the warp) needs opset >= 16


class StreamingStep(nn.Module):
    """``model.step`` with the memory state as 2L explicit tensors: forward(frame, h..., c...)
    -> (pred, flow, h..., c...), L = number of state pairs: the memory layers, and with
    ``block_matching`` the last frame and its flag (autoencoder.State)."""

    def __init__(self, model: SpatioTemporalAutoencoder) -> None:
        super().__init__()
        self.model = model.eval()
        self.num_layers = num_state_pairs(model)

    def forward(self, frame: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.num_layers
        pairs = [(state[i], state[n + i]) for i in range(n)]
        pred, flow, new = self.model.step(frame, pairs)
        return (pred, flow, *[h for h, _ in new], *[c for _, c in new])


def num_state_pairs(model: SpatioTemporalAutoencoder) -> int:
    return len(model.memory.layers) + (model.matching is not None)


def state_shapes(model: SpatioTemporalAutoencoder, batch: int, height: int, width: int) -> list[tuple[int, ...]]:
    """Shapes of h_1..h_L then c_1..c_L for frames (batch, C, height, width); with block
    matching the last "h" is the last frame and the last "c" its flag (batch, 1, 1, 1)."""
    cfg = model.config
    s = model.stride
    if cfg.memory == "conv":
        per_layer = [(batch, c, height // s, width // s) for c in cfg.memory_channels]
    else:
        per_layer = [(batch, n) for n in cfg.fc_hidden]
    if model.matching is None:
        return per_layer + per_layer
    return per_layer + [(batch, cfg.in_channels, height, width)] + per_layer + [(batch, 1, 1, 1)]


def initial_state(model: SpatioTemporalAutoencoder, batch: int, height: int, width: int) -> list[torch.Tensor]:
    """The zero state for the first frame (equal to ``model.step(frame, None)``)."""
    return [torch.zeros(s) for s in state_shapes(model, batch, height, width)]


def io_names(model: SpatioTemporalAutoencoder) -> tuple[list[str], list[str]]:
    n = len(model.memory.layers)
    last, flag = (["last_frame"], ["last_frame_real"]) if model.matching is not None else ([], [])
    states = [f"h{i}" for i in range(n)] + last + [f"c{i}" for i in range(n)] + flag
    return ["frame", *states], ["pred", "flow", *[f"{s}_out" for s in states]]


def default_size(model: SpatioTemporalAutoencoder) -> tuple[int, int]:
    """The frame size to export for when none is given: the fc memory's fixed size, else 64x64."""
    cfg = model.config
    return (int(cfg.fc_frame_size[0]), int(cfg.fc_frame_size[1])) if cfg.memory == "fc" else (64, 64)


def _description(model: SpatioTemporalAutoencoder, batch: int, size: tuple[int, int]) -> dict:
    ins, outs = io_names(model)
    return {
        "stae_model_config": model.config.to_dict(),
        "inputs": ins,
        "outputs": outs,
        "frame_shape": [batch, model.config.in_channels, *size],
        "state_shapes": [list(s) for s in state_shapes(model, batch, *size)],
        "flow": "backward flow T_t on the feature grid (pred(p) ~ frame(p + T(p))), feature-grid pixels; "
                f"image pixels = upsample x {model.stride}",
        "first_frame_state": "zeros",
    }


def export_model(model: SpatioTemporalAutoencoder, path: Union[str, os.PathLike], fmt: str,
                 size: Optional[tuple[int, int]] = None, batch: int = 1, force: bool = False) -> Path:
    """Write ``model``'s streaming step to ``path`` as ``fmt`` ("torchscript" or "onnx") for
    frames (batch, C, *size); atomic (temporary file, then rename). Returns the path."""
    if fmt not in FORMATS:
        raise StaeError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    if path.is_dir():
        raise StaeError(f"--out {path}: is a directory, expected a file name")
    if path.exists() and not force:
        raise StaeError(f"{path} already exists (use --force to overwrite)")
    if batch < 1:
        raise StaeError(f"--batch must be >= 1, got {batch}")
    size = default_size(model) if size is None else size
    model.check_frame_shape((model.config.in_channels, *size), "--size")
    from stae.machine import activation_bytes, require_memory

    require_memory(2 * activation_bytes(model.config, batch, *size), f"tracing for --batch {batch} --size {size[0]}x{size[1]}")
    meta = _description(model, batch, size)
    # The fast paths compute the same function faster in eager PyTorch, but FFT convolution has
    # no ONNX counterpart and the exporter mistranslates the sub-pixel decoder's phase kernels
    # (test_export), so the export runs the same weights in the paper's direct layers.
    model = _direct_copy(model)
    wrapper = StreamingStep(model).eval()
    frame = torch.rand(batch, model.config.in_channels, *size, generator=torch.Generator().manual_seed(0))
    example = (frame, *initial_state(model, batch, *size))
    buf = io.BytesIO()
    # Tracing warns that shape checks and the warp's grid are fixed for this size: intended.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # torch marks both exporters deprecated; we keep them on purpose: the torch.export-based
        # ONNX exporter runs the model on fake tensors, which end up in the warp's grid cache.
        warnings.simplefilter("ignore", DeprecationWarning)
        # The ONNX pass cannot fold strided (step 2) slices into constants; it says so per slice.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        if fmt == "torchscript":
            traced = torch.jit.trace(wrapper, example, check_trace=False)
            torch.jit.save(traced, buf, _extra_files={"stae.json": json.dumps(meta)})
        else:
            buf = _onnx_bytes(wrapper, example, model, meta)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _direct_copy(model: SpatioTemporalAutoencoder) -> SpatioTemporalAutoencoder:
    """The same weights in a model built with the direct layers (no fast paths), in eval mode."""
    direct = SpatioTemporalAutoencoder(model.config.replace(**DIRECT))
    direct.load_state_dict(model.state_dict())
    return direct.eval()


def _onnx_bytes(wrapper: nn.Module, example: tuple, model: SpatioTemporalAutoencoder, meta: dict) -> io.BytesIO:
    try:
        import onnx
    except ImportError:
        raise StaeError("ONNX export needs the onnx package: pip install 'stae[export]'") from None
    ins, outs = io_names(model)
    buf = io.BytesIO()
    # The TorchScript-based exporter: the model is a plain graph of convolutions, LSTM
    # arithmetic and one grid_sample, which it handles without the dynamo machinery.
    torch.onnx.export(wrapper, example, buf, input_names=ins, output_names=outs, opset_version=ONNX_OPSET,
                      dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, json.dumps(v)
    return io.BytesIO(proto.SerializeToString())
