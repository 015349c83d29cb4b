"""torch.hub entry points for stae: ``torch.hub.load(REPO_DIR, ENTRY, source="local")``.

    import torch
    model = torch.hub.load("path/to/stae", "vanilla_mmnist", source="local")   # shipped weights
    model = torch.hub.load("path/to/stae", "stae_model", "conv-2enc-1lstm", source="local")

Works from a checkout without installing stae: the package lives under ``src/`` (the src
layout), so this file puts that folder first on ``sys.path``. The packages in
``dependencies`` must be installed (torch.hub checks them before loading an entry point).
Models are returned in eval mode on the CPU; nothing is downloaded.
"""

import sys
from pathlib import Path

dependencies = ["torch", "numpy", "safetensors", "tqdm"]

_SRC = str(Path(__file__).resolve().parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)


def vanilla_mmnist(pretrained: bool = True):
    """The paper's vanilla model (conv-1enc-1lstm, 703,651 parameters) trained on binary Moving
    MNIST 64x64 and shipped with stae (docs/model_zoo.md). ``pretrained=False``: the same
    architecture and options, freshly initialised."""
    from stae.weights import load_model
    from stae.model import SpatioTemporalAutoencoder

    model = load_model("vanilla-mmnist")
    if not pretrained:
        model = SpatioTemporalAutoencoder(model.config).eval()
    return model


def stae_model(name: str = "conv-1enc-1lstm", **config_overrides):
    """A freshly initialised model of a Table 2 preset (``stae info`` lists them), e.g.
    ``stae_model("conv-2enc-1lstm", output="sigmoid")``; or, given the name of a shipped model
    (``stae models``), that trained model."""
    from stae.weights import load_model, shipped_models
    from stae.model import build_model

    if name in shipped_models() and not config_overrides:
        return load_model(name)
    return build_model(name, **config_overrides).eval()
