"""``stae info [PRESET|CHECKPOINT]``: the module table of a model with parameter counts."""

from __future__ import annotations

import argparse

from stae.model.config import presets
from stae.paper import PAPER_PARAMETERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a model's modules and parameter counts (Table 1/2)",
                       description="Print the per-module parameter counts of a preset (Table 2 names) "
                                   "or of a checkpoint; with no argument, every preset.")
    p.add_argument("model", nargs="?", help="a preset name or a checkpoint path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stae.model import build_model, parameter_table

    names = [args.model] if args.model else list(presets())
    for name in names:
        if name in presets():
            model, label = build_model(name), name
        else:
            from pathlib import Path

            from stae.weights import load_model, resolve_checkpoint, shipped_models
            from stae.errors import StaeError

            if not Path(name).exists() and name not in shipped_models():
                raise StaeError(f"{name!r} is neither a preset ({', '.join(presets())}) nor a checkpoint path")

            model, label = load_model(name), str(resolve_checkpoint(name))
        rows = parameter_table(model)
        cfg = model.config
        print(f"{label}: encoder {cfg.in_channels}->{'->'.join(map(str, cfg.encoder_channels))}, "
              f"memory {cfg.memory} {cfg.memory_channels if cfg.memory == 'conv' else cfg.fc_hidden}, "
              f"Theta {cfg.flow_kernel}x{cfg.flow_kernel}{' + 1x1' if cfg.flow_1x1 else ''}")
        labels = {"E": "Spatial encoder (E)", "D": "Spatial decoder (D)", "memory": "Memory (LSTM)",
                  "Theta": "Optical flow regressor (Theta)", "total": "Total"}
        for key, n in rows.items():
            print(f"  {labels[key]:<32}{n:>14,}")
        paper = PAPER_PARAMETERS.get(name)
        if paper is not None:
            diff = rows["total"] - paper
            note = "exact" if diff == 0 else f"{diff:+,} ({100 * diff / paper:+.2f}%)"
            print(f"  {'Paper (Table 2)':<32}{paper:>14,}  {note}")
        print()
    return 0
