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


def number(lo: float | None = None, hi: float | None = None, integer: bool = False, above: bool = False):
    """An argparse type for a finite number in a stated range: ``lo <= x`` (``lo < x`` with
    ``above``) and ``x <= hi``. NaN and infinities are refused, so ``--fps nan`` is one error line
    naming the flag, never a value that reaches the work."""
    import math

    kind = "an integer" if integer else "a number"
    bounds = " and ".join(s for s in ((f"> {lo:g}" if above else f">= {lo:g}") if lo is not None else "",
                                      f"<= {hi:g}" if hi is not None else "") if s)

    def parse(text: str):
        try:
            x = int(text) if integer else float(text)
        except ValueError:
            raise ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not math.isfinite(x) or (lo is not None and (x <= lo if above else x < lo)) or (hi is not None and x > hi):
            raise ArgumentTypeError(f"expected {kind} {bounds}, got {text!r}" if bounds else
                                    f"expected a finite number, got {text!r}")
        return x

    parse.__name__ = "integer" if integer else "number"  # argparse names the type in some messages
    return parse
