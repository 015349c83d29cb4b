"""stae: the spatio-temporal video autoencoder with differentiable memory
(Patraucean, Handa & Cipolla, 2015) in PyTorch.

The public API: the model (``build_model``, ``SpatioTemporalAutoencoder``), its config and the
Table 2 presets, the flow conventions (``warp``, ``backward_to_forward``, ``upsample_flow``),
checkpoints (``load_model``, ``save_model``), flow colouring and ``.flo`` files, and the data
sources (``MovingMNIST``, ``load_clip_file``, ``VideoClipDataset``).
"""

from stae.weights import load_model, save_model
from stae.model.config import ModelConfig, preset, presets
from stae.data import MovingMNIST, VideoClipDataset, load_clip_file, load_digits
from stae.errors import StaeError
from stae.flowio import flow_to_color, read_flo, write_flo
from stae.model import SpatioTemporalAutoencoder, StaeOutput, build_model, parameter_table
from stae.model.warp import backward_to_forward, upsample_flow, warp
from stae._version import __version__

__all__ = [
    "__version__", "ModelConfig", "MovingMNIST", "SpatioTemporalAutoencoder", "StaeError", "StaeOutput",
    "VideoClipDataset", "backward_to_forward", "build_model", "flow_to_color", "load_clip_file",
    "load_digits", "load_model", "parameter_table", "preset", "presets", "read_flo", "save_model",
    "upsample_flow", "warp", "write_flo",
]
