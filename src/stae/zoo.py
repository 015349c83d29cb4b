"""The model zoo: every model shipped in the package (``stae/weights/*.safetensors``), each
described by its own file.

A card is read from the weights file only — its safetensors metadata (written by
``scripts/reproduce.py`` when the model was made: name, data, the training summary) and its
bytes (tensor shapes for the parameter count, SHA-256, size) — never from a table kept by
hand, so the zoo cannot disagree with the files. A field the metadata lacks reads "—".

``stae models`` prints the cards; ``stae models --markdown`` writes docs/model_zoo.md (a test
regenerates it and fails when the file differs).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Optional, Union

from safetensors import safe_open

from stae.weights import read_metadata, shipped_models

MISSING = "—"
NAME_KEY, DATA_KEY, TRAINING_KEY = "stae_name", "stae_data", "stae_training"

# Card fields in display order, with their column titles.
FIELDS = {
    "name": "name", "preset": "preset", "data": "data", "parameters": "parameters",
    "recipe": "recipe", "training_time": "training time", "scores": "headline scores",
    "size": "size", "sha256": "sha256",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parameters(path: Path) -> int:
    """Number of stored tensor elements (the model has no buffers, so its parameters)."""
    with safe_open(str(path), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def _training(meta: dict[str, str]) -> dict[str, Any]:
    try:
        value = json.loads(meta.get(TRAINING_KEY, "{}"))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _recipe(t: dict[str, Any]) -> str:
    """e.g. 'fast: adamw lr 0.002, onecycle, batch 16, bce loss on all steps, 1,000 updates (16,000 sequences)'."""
    parts = []
    if "optimizer" in t:
        parts.append(f"{t['optimizer']}" + (f" lr {t['lr']:g}" if isinstance(t.get("lr"), (int, float)) else ""))
    if "schedule" in t:
        parts.append(str(t["schedule"]))
    if "batch_size" in t:
        parts.append(f"batch {t['batch_size']}")
    if "loss" in t:
        parts.append(f"{t['loss']} loss" + (f" on {t['loss_steps']} steps" if "loss_steps" in t else ""))
    if isinstance(t.get("updates"), int):
        seen = t.get("sequences_seen")
        parts.append(f"{t['updates']:,} updates" + (f" ({seen:,} sequences)" if isinstance(seen, int) else ""))
    body = ", ".join(parts)
    if "recipe" not in t:
        return body or MISSING
    return f"{t['recipe']}: {body}" if body else str(t["recipe"])


def _training_time(t: dict[str, Any]) -> str:
    if not isinstance(t.get("minutes"), (int, float)):
        return MISSING
    threads = f" on {t['threads']} CPU threads" if isinstance(t.get("threads"), int) else ""
    return f"{t['minutes']:.1f} min{threads}"


def _scores(t: dict[str, Any]) -> str:
    """The validation loss the training summary records (the only score in the metadata)."""
    best = t.get("best_val")
    if not isinstance(best, (int, float)):
        return MISSING
    loss = t.get("loss", "loss")
    where = [f"step {t['best_step']:,}"] if isinstance(t.get("best_step"), int) else []
    if isinstance(t.get("val_sequences"), int):
        where.append(f"{t['val_sequences']:,} sequences")
    return f"validation {loss} {best:.4f}" + (f" ({', '.join(where)})" if where else "")


def model_card(path: Union[str, Path]) -> dict[str, Any]:
    """The card of one stae weights file (see the module docstring); values are strings."""
    path = Path(path)
    meta = read_metadata(path)
    t = _training(meta)
    size = path.stat().st_size
    return {
        "name": meta.get(NAME_KEY) or path.stem,
        "preset": str(t.get("preset") or MISSING),
        "data": meta.get(DATA_KEY) or MISSING,
        "parameters": f"{_parameters(path):,}",
        "recipe": _recipe(t),
        "training_time": _training_time(t),
        "scores": _scores(t),
        "size": f"{size / 1e6:.2f} MB",
        "sha256": _sha256(path),
        "file": path.name,
    }


def model_cards(paths: Optional[list[Path]] = None) -> list[dict[str, Any]]:
    """Cards of the shipped models (or of ``paths``), sorted by name."""
    paths = list(shipped_models().values()) if paths is None else paths
    return sorted((model_card(p) for p in paths), key=lambda c: c["name"])


def format_text(cards: list[dict[str, Any]]) -> str:
    """One block per model, a field per line (the long fields do not fit a terminal row)."""
    if not cards:
        return "no models shipped with this installation"
    width = max(len(title) for title in FIELDS.values())
    blocks = []
    for card in cards:
        lines = [card["name"]] + [f"  {title:<{width}}  {card[key]}" for key, title in FIELDS.items() if key != "name"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _md_cell(value: str) -> str:
    return str(value).replace("|", "\\|")


def format_markdown(cards: list[dict[str, Any]]) -> str:
    """docs/model_zoo.md: a title, how to use a model, the table, and where each field comes from."""
    header = "| " + " | ".join(FIELDS.values()) + " |"
    rule = "|" + "|".join("---" for _ in FIELDS) + "|"
    rows = ["| " + " | ".join(_md_cell(f"`{c[k]}`" if k == "sha256" else c[k]) for k in FIELDS) + " |" for c in cards]
    names = ", ".join(f"`{c['name']}`" for c in cards) or "none"
    return "\n".join([
        "# Model zoo",
        "",
        "<!-- Generated by `stae models --markdown > docs/model_zoo.md`; do not edit by hand:",
        "     tests/test_zoo.py regenerates it and fails when this file differs. -->",
        "",
        f"Models shipped inside the package ({names}), each loadable by name, offline:",
        "`stae evaluate NAME`, `stae predict NAME ...`, `stae.load_model(NAME)`, or",
        "`torch.hub.load(REPO_DIR, NAME_WITH_UNDERSCORES, source=\"local\")` (hubconf.py).",
        "",
        *([header, rule, *rows] if cards else ["No models are shipped."]),
        "",
        "Every field is read from the weights file itself (`stae.zoo`): name, data and the",
        "training summary (preset, recipe, minutes, threads, validation loss) from its safetensors",
        "metadata; parameters are the elements of its tensors; size and SHA-256 are those of the",
        "file. A field the metadata lacks reads \"—\". The headline score is the lowest validation",
        "loss the run recorded; test-set scores against baselines are in",
        "[results.md](results.md#shipped-weights) (`stae evaluate NAME` recomputes them).",
        "",
    ])
