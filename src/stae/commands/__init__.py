"""One module per subcommand (``register(subparsers)`` adds its parser), and the argument
types they share."""

from __future__ import annotations

from argparse import ArgumentTypeError


def parse_size(text: str) -> tuple[int, int]:
    """The ``--size`` of every command: 'HxW' (or a single 'N' for NxN) -> (H, W). An
    argparse type: bad text raises ArgumentTypeError, which argparse prints as one line."""
    try:
        hw = tuple(int(s) for s in text.lower().split("x"))
    except ValueError:
        raise ArgumentTypeError(f"size {text!r}: expected N or HxW, e.g. 64 or 48x64") from None
    if len(hw) == 1:
        hw = hw * 2
    if len(hw) != 2 or min(hw) < 1:
        raise ArgumentTypeError(f"size {text!r}: expected N or HxW with positive integers, e.g. 64 or 48x64")
    return hw  # type: ignore[return-value]
