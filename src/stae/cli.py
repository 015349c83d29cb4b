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
    "models",
    "plot",
    "predict",
    "propagate",
    "segment_demo",
    "train",
    "warp_check",
]


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one error line: ``stae: error: --flag: <problem> (see stae <command>
    --help)`` (no usage block), status 2, like every other bad input. Subcommand parsers are of
    this class too."""

    def error(self, message: str):  # type: ignore[override]
        message = message[len("argument "):] if message.startswith("argument ") else message
        self.exit(2, f"stae: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="stae",
        description="Spatio-temporal video autoencoder with differentiable memory (Patraucean et al. 2015).",
    )
    from stae._version import __version__

    parser.add_argument("--version", action="version", version=f"stae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"stae.commands.{name}").register(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``stae: warning:`` line (not Python's two, with a source line)."""
    print(f"stae: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    import warnings

    shown, warnings.showwarning = warnings.showwarning, _one_line_warning
    try:
        return _run(argv)
    finally:
        warnings.showwarning = shown


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad flag (2, already printed as one line)
        return e.code if isinstance(e.code, int) else 2
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
