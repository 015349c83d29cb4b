"""Model weights on disk: safetensors (loading cannot run code) with the ModelConfig JSON in
the file's metadata, so a single ``.safetensors`` file is a complete, loadable model.

Paths accepted by :func:`load_model` (``stae evaluate/predict/propagate/export``):

* a ``.safetensors`` file written by :func:`save_model`;
* a checkpoint directory containing ``model.safetensors``;
* a run directory: its ``best/`` checkpoint, else its newest ``step-*`` checkpoint;
* the name of a model shipped inside the package (``stae.weights.shipped_models()``).

Writes are atomic: a temporary file in the same directory, fsync, then ``os.replace``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import load_file, save

from stae.model.config import ModelConfig
from stae.errors import StaeError

WEIGHTS_NAME = "model.safetensors"
CONFIG_KEY = "stae_model_config"
FORMAT_KEY = "stae_format"
FORMAT_VERSION = "1"
SHIPPED_DIR = Path(__file__).parent / "weights"


def temp_beside(path: Path) -> tuple[int, str]:
    """(fd, name) of a new temporary file beside ``path``, named ``.NAME.PID.XXXX.tmp`` so that
    :func:`remove_stale_temps` can tell ours from a killed process's. Stale ones go first."""
    remove_stale_temps(path)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")


def _age(p: Path) -> float:
    import time

    try:
        return time.time() - p.stat().st_mtime
    except OSError:
        return 0.0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: not ours to judge
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files that a killed writer of ``path`` left beside it (those of
    :func:`temp_beside` whose process is gone); returns them."""
    gone, name = [], Path(path).name
    # Ours carry the writer's pid; stae < 0.3 named them NAME.XXXX.tmp: stale once an hour old.
    old = [p for p in Path(path).parent.glob(f"{name}.*.tmp") if _age(p) > 3600]
    for p in list(Path(path).parent.glob(f".{name}.*.tmp")) + old:
        pid = p.name[len(name) + 2:].split(".", 1)[0] if p.name.startswith(".") else "0"
        if pid.isdigit() and not _alive(int(pid)):
            try:
                p.unlink()
                gone.append(p)
            except OSError:
                pass
    return gone


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_model(path: Union[str, Path], model: torch.nn.Module, extra_metadata: Optional[dict[str, str]] = None) -> Path:
    """Save weights + config to one safetensors file, atomically. Returns the path."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {CONFIG_KEY: model.config.to_json(), FORMAT_KEY: FORMAT_VERSION}
    meta.update(extra_metadata or {})
    atomic_write_bytes(path, save(state, metadata=meta))
    return path


def shipped_models() -> dict[str, Path]:
    """Models shipped inside the package, by name (e.g. ``vanilla-mmnist``)."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.safetensors"))}


def resolve_checkpoint(path: Union[str, Path]) -> Path:
    """The ``.safetensors`` file that ``path`` (file, checkpoint dir, run dir or shipped name) names."""
    p = Path(path)
    if not p.exists():
        shipped = shipped_models()
        if str(path) in shipped:
            return shipped[str(path)]
        names = f" (shipped models: {', '.join(shipped)})" if shipped else ""
        raise StaeError(f"checkpoint not found: {path}{names}")
    if p.is_file():
        return p
    if (p / WEIGHTS_NAME).is_file():
        return p / WEIGHTS_NAME
    if (p / "best" / WEIGHTS_NAME).is_file():
        return p / "best" / WEIGHTS_NAME
    steps = sorted(p.glob(f"step-*/{WEIGHTS_NAME}"))
    if steps:
        return steps[-1]
    raise StaeError(f"no checkpoint in {p}: expected {WEIGHTS_NAME}, best/{WEIGHTS_NAME} or step-*/{WEIGHTS_NAME}")


def _is_torch_save(f: Path) -> bool:
    """Whether ``f`` starts like a ``torch.save`` file: a zip archive (torch >= 1.6) or a pickle."""
    try:
        with open(f, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def read_metadata(path: Union[str, Path]) -> dict[str, str]:
    """The safetensors metadata of a checkpoint file; clear errors for foreign/corrupt files."""
    f = resolve_checkpoint(path)
    try:
        with safe_open(str(f), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        if _is_torch_save(f):
            raise StaeError(f"{f}: a torch.save file, not a stae checkpoint (stae reads the .safetensors "
                            "files that stae train and stae.weights.save_model write)") from None
        raise StaeError(f"{f}: not a readable safetensors checkpoint (truncated or corrupt?): {e}") from None
    if CONFIG_KEY not in meta:
        raise StaeError(f"{f}: a safetensors file, but not a stae checkpoint (no '{CONFIG_KEY}' metadata)")
    return meta


def load_model(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu"):
    """Load a model (in eval mode) from a checkpoint path or shipped name.

    Nothing in the file is trusted before it is checked: the stored config goes through the
    one config checker (:meth:`ModelConfig.from_dict`, the ranges of every key), the tensors'
    names, shapes and dtypes (floating point only) are compared with the model that config
    builds -- on the meta device, before any memory is allocated -- and the weights must be
    finite. Raises :class:`StaeError` naming the file for missing, truncated, foreign,
    mismatched or non-finite files.
    """
    from stae.machine import require_memory
    from stae.model.autoencoder import SpatioTemporalAutoencoder

    f = resolve_checkpoint(path)
    meta = read_metadata(f)
    try:
        cfg = ModelConfig.from_dict(json.loads(meta[CONFIG_KEY]))
    except (ValueError, TypeError) as e:
        raise StaeError(f"{f}: bad model config in checkpoint: {e}") from None
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in SpatioTemporalAutoencoder(cfg).state_dict().items()}
    _check_header(f, expected)
    require_memory(8.0 * sum(math.prod(s) for s in expected.values()), f"{f}: the model of this checkpoint")
    model = SpatioTemporalAutoencoder(cfg)
    try:
        state = load_file(str(f), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as e:
        raise StaeError(f"{f}: cannot read weights (truncated or corrupt?): {e}") from None
    for k, v in state.items():
        if not bool(torch.isfinite(v).all()):
            raise StaeError(f"{f}: weight {k} holds NaN or infinite values (a diverged or corrupt model)")
    model.load_state_dict(state)
    model.to(map_location).eval()
    return model


FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def _check_header(f: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """The file's tensor names, shapes and dtypes (read from its header only) against ``expected``."""
    try:
        with safe_open(str(f), framework="pt") as fh:
            header = {k: (tuple(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise StaeError(f"{f}: cannot read weights (truncated or corrupt?): {e}") from None
    missing, unexpected = set(expected) - set(header), set(header) - set(expected)
    if missing or unexpected:
        raise StaeError(f"{f}: weights do not match the model config "
                        f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    for k, shape in expected.items():
        if header[k][0] != shape:
            raise StaeError(f"{f}: weight {k} has shape {header[k][0]}, the config needs {shape}")
        if header[k][1] not in FLOAT_DTYPES:
            raise StaeError(f"{f}: weight {k} has dtype {header[k][1]}; model weights are floating point "
                            f"({', '.join(FLOAT_DTYPES)})")


def metadata_json(path: Union[str, Path], key: str) -> Any:
    """A JSON value stored in a checkpoint's metadata under ``key`` (None when absent)."""
    meta = read_metadata(path)
    return json.loads(meta[key]) if key in meta else None
