"""Training: config (YAML/TOML + overrides), recipes (paper / fast), the data order,
checkpoints of the run directory, the loop, and data-parallel helpers. See docs/training.md."""

from stae.training.run_config import DataConfig, LogConfig, CheckpointConfig, RunConfig, TrainConfig, load_config, resolve
from stae.training.loop import TrainResult, TrainingDiverged, clip_loss, load_run_config, train
from stae.training.recipes import RECIPES, learning_rate, make_optimizer

__all__ = [
    "CheckpointConfig", "DataConfig", "LogConfig", "RECIPES", "RunConfig", "TrainConfig", "TrainResult",
    "TrainingDiverged", "clip_loss", "learning_rate", "load_config", "load_run_config", "make_optimizer",
    "resolve", "train",
]
