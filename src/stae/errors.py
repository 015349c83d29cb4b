"""The one exception type for bad user input (files, shapes, configs, checkpoints).

The CLI prints it as one line, ``stae: error: <message>``, and exits with status 2. Messages
name the file or key and the problem. It subclasses ``ValueError`` so library callers that
catch ``ValueError`` keep working.
"""

import sys
from typing import Callable


class StaeError(ValueError):
    """Bad input from the user: a missing/corrupt file, a wrong shape, a malformed config."""


def run_script(prog: str, main: Callable[[list[str]], int], argv: list[str]) -> int:
    """A script's ``main(argv)`` with the CLI's contract for bad input: a :class:`StaeError` is
    printed as one line, ``<prog>: error: <message>``, and the exit status is 2."""
    try:
        return main(argv)
    except StaeError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
