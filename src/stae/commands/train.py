"""``stae train``: train a model from a config file and ``--set`` overrides, or ``--resume`` a run.

Also runs data-parallel under ``torchrun --nproc_per_node N -m stae train ...``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stae.errors import StaeError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model (config file + --set overrides), or --resume a run",
        description="Train the spatio-temporal autoencoder. Settings come from the recipe's defaults "
                    "(train.recipe: fast or paper), then CONFIG (YAML or TOML), then --set overrides; the "
                    "resolved config is written to OUT/resolved.yaml. See docs/training.md.")
    p.add_argument("config", nargs="?", help="config file (.yaml, .yml or .toml); optional")
    p.add_argument("--out", "-o", default=None, help="run directory (default: runs/<config name or recipe>)")
    p.add_argument("--set", "-s", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value, e.g. --set train.lr=3e-4 --set model.preset=conv-2enc-1lstm "
                        "(repeatable; values are YAML: true, null, [16, 32])")
    p.add_argument("--recipe", choices=("fast", "paper"), default=None,
                   help="shorthand for --set train.recipe=NAME (over CONFIG's train.recipe, like any --set); giving "
                        "both --recipe and --set train.recipe with different names is an error")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue RUN_DIR from its newest checkpoint, with its resolved.yaml (+ --set overrides)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--summarize", metavar="RUN_DIR", default=None,
                   help="only (re)write RUN_DIR/result.json from its resolved.yaml and metrics.jsonl (a run "
                        "killed before its end, or written by an older version) and print it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stae.training import load_config, load_run_config, train

    if args.summarize:
        other = [f for f, v in (("CONFIG", args.config), ("--set", args.overrides), ("--recipe", args.recipe),
                                ("--resume", args.resume), ("--out", args.out), ("--print-config", args.print_config)) if v]
        if other:
            raise StaeError(f"--summarize only rewrites RUN_DIR/result.json; {other[0]} does not apply with it")
        return summarize(Path(args.summarize))
    overrides = _overrides(args)
    if args.resume:
        if args.config:
            raise StaeError("--resume takes the config from RUN_DIR/resolved.yaml; drop CONFIG (use --set to change keys)")
        if args.out:
            raise StaeError(f"--out does not apply with --resume: the run continues in {args.resume} (to branch a "
                            f"finished run, copy its directory and resume the copy)")
        run_dir = Path(args.resume)
        cfg = load_run_config(run_dir, overrides)
    else:
        cfg = load_config(args.config, overrides)
        name = Path(args.config).stem if args.config else cfg.train.recipe
        run_dir = Path(args.out) if args.out else Path("runs") / name
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    res = train(cfg, run_dir, resume=bool(args.resume))
    if res.stopped in ("SIGINT", "SIGTERM"):
        import signal
        import sys

        from stae.training.run_dir import last_good

        print(f"stae: {res.stopped}: stopped at update {res.step}/{res.total_steps}; checkpoint {last_good(run_dir)} "
              f"(continue with: stae train --resume {run_dir})", file=sys.stderr)
        return 128 + int(getattr(signal, res.stopped))
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        val = f", validation loss {res.last_val:.6g} (best {res.best_val:.6g})" if res.last_val is not None else ""
        how = "stopped at the time limit" if res.stopped == "time limit" else "finished"
        print(f"{how}: {res.step}/{res.total_steps} updates, last training loss {res.last_loss:.6g}{val}")
        print(f"run directory: {run_dir}  (checkpoints step-*/ and best/, metrics.jsonl, result.json, "
              f"tb/ for TensorBoard)")
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    """The --set overrides, with --recipe as ``train.recipe=NAME`` first (so it overrides CONFIG);
    a --set train.recipe naming another recipe is refused rather than silently winning."""
    overrides = list(args.overrides)
    if args.recipe:
        from stae.training.run_config import parse_value

        for item in overrides:
            key, _, value = item.partition("=")
            if key.strip() == "train.recipe" and parse_value(value.strip()) != args.recipe:
                raise StaeError(f"--recipe {args.recipe} and --set {item.strip()} disagree; give one of them")
        overrides.insert(0, f"train.recipe={args.recipe}")
    return overrides


def summarize(run_dir: Path) -> int:
    """``--summarize``: result.json after the fact. How the run stopped is inferred: a run that
    reached its max_steps is done; otherwise it stopped early (time limit, or killed)."""
    from stae.training.summary import run_summary, write_result

    s = run_summary(run_dir)
    done = s["max_steps"] and s["updates"] >= s["max_steps"]
    path = write_result(run_dir, {"stopped": "done" if done else "early (time limit or killed)",
                                  "summarized_after_the_fact": True})
    print(path.read_text(), end="")
    return 0
