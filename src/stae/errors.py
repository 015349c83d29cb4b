"""The one exception type for bad user input (files, shapes, configs, checkpoints).

The CLI prints it as one line, ``stae: error: <message>``, and exits with status 2. Messages
name the file or key and the problem. It subclasses ``ValueError`` so library callers that
catch ``ValueError`` keep working.
"""


class StaeError(ValueError):
    """Bad input from the user: a missing/corrupt file, a wrong shape, a malformed config."""
