"""stae: the spatio-temporal video autoencoder with differentiable memory
(Patraucean, Handa & Cipolla, 2015) in PyTorch."""

from stae.config import ModelConfig, preset, presets
from stae.errors import StaeError
from stae.model.warp import backward_to_forward, upsample_flow, warp

__version__ = "0.1.0"

__all__ = [
    "ModelConfig",
    "StaeError",
    "backward_to_forward",
    "preset",
    "presets",
    "upsample_flow",
    "warp",
]
