"""The run directory: the one owner of every name and layout inside it.

Layout of a run directory::

    resolved.yaml              the resolved config (written once, at the start)
    metrics.jsonl              one JSON object per logged step / validation
    tb/                        TensorBoard event files
    step-0000120/              a checkpoint (the last ``keep_last`` are kept)
        model.safetensors      weights, the ModelConfig in the metadata (stae.weights)
        config.json            the ModelConfig as JSON (for tools that do not read safetensors)
        state.pt               training state: optimiser, step, epoch, RNG states, best val loss
    best/                      the checkpoint with the lowest validation loss so far

Atomicity: a checkpoint is written into a hidden temporary directory (``.tmp-*``) whose files
are fsynced, then renamed to its final name in one ``os.rename``; a directory named
``step-*`` is therefore always complete. ``best/`` is replaced by rename too (the old one is
moved to ``.old-best`` first and removed after; a crash in between is repaired on the next
start). Leftover ``.tmp-*`` directories of a killed run are removed on resume.

``state.pt`` is written with ``torch.save`` and read with ``torch.load(weights_only=True)``:
only tensors, numbers, strings, lists, tuples and dicts, so loading it cannot run code.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from stae.weights import WEIGHTS_NAME, atomic_write_bytes, load_model, save_model
from stae.errors import StaeError

RESOLVED_NAME = "resolved.yaml"
METRICS_NAME = "metrics.jsonl"
RESULT_NAME = "result.json"
TENSORBOARD_DIR = "tb"
STATE_NAME = "state.pt"
CONFIG_NAME = "config.json"
STATE_FORMAT = "stae-train-state"
STATE_VERSION = 1
BEST = "best"
_STEP_RE = re.compile(r"^step-(\d+)$")


def step_dir_name(step: int) -> str:
    return f"step-{step:07d}"


# ------------------------------------------------------------------------- the run as a whole
def prepare(run_dir: Path, resume: bool) -> None:
    """A new run needs an empty or absent directory: an existing run is never overwritten."""
    if resume:
        if not run_dir.is_dir():
            raise StaeError(f"--resume: run directory not found: {run_dir}")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise StaeError(f"{run_dir}: exists and is not empty; continue it with --resume {run_dir} "
                        f"or choose another --out")


def read_resolved(run_dir: Union[str, Path]) -> dict[str, Any]:
    """The run's resolved config as a nested dict (``resolved.yaml``)."""
    from stae.training.run_config import read_config_file

    path = Path(run_dir) / RESOLVED_NAME
    if not path.is_file():
        raise StaeError(f"{run_dir}: no {RESOLVED_NAME}; not a stae run directory")
    return read_config_file(path)


def write_resolved(run_dir: Path, text: str) -> None:
    """Write ``resolved.yaml`` unless it already holds ``text`` (a resume without changes)."""
    path = run_dir / RESOLVED_NAME
    if not (path.is_file() and path.read_text() == text):
        atomic_write_bytes(path, text.encode())


def metrics_file(run: Union[str, Path]) -> Path:
    """A run directory (or its metrics.jsonl itself) -> the metrics.jsonl path."""
    p = Path(run)
    return p / METRICS_NAME if p.is_dir() else p


def read_metrics(run: Union[str, Path], strict: bool = False) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (a run directory or the file itself), in order.

    Every reader of metrics (plot, summaries, benchmarks, reports) uses this. By default a
    missing file is no records and an unreadable line (the torn last line of a killed run) is
    skipped; ``strict`` makes both errors naming the file and line (``stae plot``).
    """
    p = metrics_file(run)
    if not p.is_file():
        if strict:
            raise StaeError(f"{p}: no such file (give a run directory written by stae train, or its {METRICS_NAME})")
        return []
    try:
        text = p.read_bytes().decode("utf-8", errors="strict" if strict else "replace")
    except UnicodeDecodeError as e:
        raise StaeError(f"{p}: not a metrics file (binary, not UTF-8 text at byte {e.start})") from None
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if strict:
                raise StaeError(f"{p}:{i}: not a JSON line ({e.msg})") from None
            continue
        if isinstance(rec, dict):
            out.append(rec)
        elif strict:
            raise StaeError(f"{p}:{i}: expected a JSON object, got {type(rec).__name__}")
    return out


def trim_metrics(run_dir: Path, step: int) -> None:
    """Drop the records past ``step`` (a resume writes them again), atomically."""
    path = run_dir / METRICS_NAME
    if path.exists():
        keep = [r for r in read_metrics(run_dir) if int(r.get("step", 0)) <= step]
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in keep).encode())


def last_good(run_dir: Path) -> str:
    """The newest step checkpoint, for messages after a failure."""
    steps = step_checkpoints(run_dir)
    return str(steps[-1][1]) if steps else "none (no checkpoint was written yet)"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as plain data (loadable with weights_only=True)."""
    py = random.getstate()
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])


# ------------------------------------------------------------------------- writing
def write_checkpoint(run_dir: Union[str, Path], name: str, model: torch.nn.Module,
                     state: Optional[dict[str, Any]]) -> Path:
    """Write ``run_dir/name/`` (weights, config JSON, training state) atomically; return it.

    An existing directory of that name is replaced (renamed aside, then deleted).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(tmp / WEIGHTS_NAME, model, extra_metadata={"stae_step": str(state["step"]) if state else ""})
    cfg_path = tmp / CONFIG_NAME
    with open(cfg_path, "w") as f:
        f.write(model.config.to_json())
        f.flush()
        os.fsync(f.fileno())
    if state is not None:
        with open(tmp / STATE_NAME, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    _fsync_dir(tmp)
    final = run_dir / name
    old = run_dir / f".old-{name}"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(run_dir)
    if old.exists():
        shutil.rmtree(old)
    return final


def step_checkpoints(run_dir: Union[str, Path]) -> list[tuple[int, Path]]:
    """Complete ``step-*`` checkpoints of a run, oldest first."""
    run_dir = Path(run_dir)
    out = []
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            m = _STEP_RE.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p))
    return sorted(out)


def prune(run_dir: Union[str, Path], keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints (``best/`` is never touched)."""
    for _, p in step_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)


def repair(run_dir: Union[str, Path]) -> None:
    """Undo what a killed writer may have left: temporary dirs, and a best/ caught mid-swap."""
    run_dir = Path(run_dir)
    for p in run_dir.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for old in run_dir.glob(".old-*"):
        final = run_dir / old.name[len(".old-"):]
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, final)


# ------------------------------------------------------------------------- reading
def load_state(ckpt_dir: Union[str, Path]) -> dict[str, Any]:
    """The training state of a checkpoint dir, with a clear error for missing/corrupt/foreign files."""
    f = Path(ckpt_dir) / STATE_NAME
    if not f.is_file():
        raise StaeError(f"{f}: missing (not a training checkpoint; weights-only checkpoints cannot be resumed)")
    try:
        state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/foreign pickles
        raise StaeError(f"{f}: not a readable training state (truncated or corrupt?): "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise StaeError(f"{f}: not a stae training state (no '{STATE_FORMAT}' marker)")
    if state.get("version") != STATE_VERSION:
        raise StaeError(f"{f}: training state version {state.get('version')}, this stae reads {STATE_VERSION}")
    return state


def latest_checkpoint(run_dir: Union[str, Path]) -> Path:
    """The newest complete step checkpoint of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise StaeError(f"run directory not found: {run_dir}")
    steps = step_checkpoints(run_dir)
    if not steps:
        raise StaeError(f"{run_dir}: no step-* checkpoint to resume from")
    return steps[-1][1]


def load_weights_into(model: torch.nn.Module, ckpt_dir: Union[str, Path]) -> None:
    """Load a checkpoint's weights into an existing model (same config required)."""
    loaded = load_model(Path(ckpt_dir) / WEIGHTS_NAME)
    if loaded.config != model.config:
        raise StaeError(f"{ckpt_dir}: the checkpoint's model config differs from the run's config")
    model.load_state_dict(loaded.state_dict())
