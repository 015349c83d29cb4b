"""Deprecated: ``stae.checkpoint`` moved to :mod:`stae.weights` (one model file). This name
stays importable for one more release; ``load_model``/``save_model`` are also in ``stae``."""

import warnings

from stae.weights import (  # noqa: F401
    atomic_write_bytes, load_model, metadata_json, read_metadata, resolve_checkpoint, save_model, shipped_models)

warnings.warn("stae.checkpoint moved to stae.weights; the old name goes in the next release",
              DeprecationWarning, stacklevel=2)
