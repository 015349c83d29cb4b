"""``stae models``: the models shipped with stae, from their own files (see :mod:`stae.zoo`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped models (the model zoo) from their files' metadata",
                       description="List every model shipped inside the package: preset, data, parameters, "
                                   "recipe, training time, validation score, size and SHA-256, read from each "
                                   "weights file's own metadata (a field it lacks reads '—'). "
                                   "With FILE arguments, describe those weights files (or shipped models, by name) instead.")
    p.add_argument("files", nargs="*", type=Path, metavar="FILE",
                   help="stae .safetensors files, checkpoint/run directories or shipped model names to describe instead")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true",
                     help="print docs/model_zoo.md (stae models --markdown > docs/model_zoo.md)")
    fmt.add_argument("--json", action="store_true", help="print the cards as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stae.weights import resolve_checkpoint
    from stae.zoo import format_markdown, format_text, model_cards

    cards = model_cards([resolve_checkpoint(f) for f in args.files] if args.files else None)
    if args.markdown:
        print(format_markdown(cards), end="")
    elif args.json:
        print(json.dumps(cards, indent=2, ensure_ascii=False))
    else:
        print(format_text(cards))
    return 0
