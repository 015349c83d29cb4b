"""stae's version, kept in ONE place: ``version`` in pyproject.toml.

An installed stae (``pip install``, editable or not) reads it from the package metadata that
pip wrote from pyproject.toml. A source tree that was never installed (``src`` put on
``sys.path``, as ``hubconf.py`` does) reads it from the pyproject.toml two levels above the
package, and says ``0+unknown`` if there is none.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_VERSION_LINE = re.compile(r'^version\s*=\s*"([^"]+)"\s*$', re.MULTILINE)


def version_from_pyproject(path: Path = _PYPROJECT) -> str | None:
    """The ``version = "..."`` of a pyproject.toml's [project] table (None if unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    project = re.split(r"^\[project\]\s*$", text, maxsplit=1, flags=re.MULTILINE)
    if len(project) < 2:
        return None
    table = re.split(r"^\[", project[1], maxsplit=1, flags=re.MULTILINE)[0]  # up to the next table
    m = _VERSION_LINE.search(table)
    return m.group(1) if m else None


def get_version() -> str:
    try:
        return metadata.version("stae")
    except metadata.PackageNotFoundError:
        return version_from_pyproject() or "0+unknown"


__version__ = get_version()
