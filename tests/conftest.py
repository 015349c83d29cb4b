import pytest
import torch

from stae.model.config import ModelConfig


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def tiny_config(**kw) -> ModelConfig:
    """A model small enough for unit tests (same structure as the paper's)."""
    base = dict(encoder_channels=(4,), memory_channels=(5,), spatial_kernel=3, memory_kernel=3, flow_kernel=3)
    base.update(kw)
    return ModelConfig(**base)
