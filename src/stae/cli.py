"""``stae`` command line: a thin dispatcher. Each subcommand lives in ``stae.commands.<name>``
and exposes ``register(subparsers)``, which adds its parser and sets ``func``.

Bad input (:class:`stae.errors.StaeError`, and missing files) is reported as one line and
exit status 2; set ``STAE_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from stae.errors import StaeError

# Subcommand modules, in the order `stae --help` lists them.
COMMANDS = [
    "data",
    "demo",
    "diagnose",
    "evaluate",
    "export",
    "info",
    "plot",
    "predict",
    "propagate",
    "train",
    "warp_check",
]


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one error line: ``stae: error: stae <command>: <problem>`` (no usage
    block), status 2, like every other bad input. Subcommand parsers are of this class too."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"stae: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="stae",
        description="Spatio-temporal video autoencoder with differentiable memory (Patraucean et al. 2015).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"stae.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except (StaeError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        if os.environ.get("STAE_DEBUG"):
            raise
        msg = str(e) if isinstance(e, StaeError) else f"{e.strerror}: {e.filename}"
        print(f"stae: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``stae ... | head``): not an error of ours, and no traceback.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("stae: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        # A size the budget checks (stae.machine.require_memory) did not foresee: still one line.
        if os.environ.get("STAE_DEBUG"):
            raise
        print("stae: error: out of memory: the sizes asked for need more memory than this machine has",
              file=sys.stderr)
        return 1
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
