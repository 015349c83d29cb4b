"""How much a plain ``pip install SOURCE`` (no extras) adds on top of PyTorch.

Makes a fresh virtual environment, installs ``torch==2.13.0`` (the CPU build) into it, notes
its packages and the size of its site-packages, then installs SOURCE without extras and
prints what that added: the number of distributions and the bytes on disk (``du`` of
site-packages after minus before, so torch and the packages torch brings are not counted).

    python scripts/measure_install.py .                      # this tree
    python scripts/measure_install.py /tmp/stae-0.1.0 --json before.json

Run by hand when the dependencies change; the figures go into docs/install.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TORCH = "torch==2.13.0"


# After installing: the package imports, the embedded digits load and the zoo lists a model,
# without any extra (run outside the source tree, so the installed copy is the one used).
SMOKE = ("import stae, stae.zoo; from stae.data import load_digits; "
         "print('stae', stae.__version__, 'digits', load_digits('test').shape, "
         "'models', [c['name'] for c in stae.zoo.model_cards()])")


def _run(cmd: list[str], cwd=None) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd).stdout


def _site_packages(python: Path) -> Path:
    return Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())


def _du_bytes(path: Path) -> int:
    """Disk usage in bytes, as ``du -sb`` counts it (apparent sizes)."""
    return int(_run(["du", "-sb", str(path)]).split()[0])


def _distributions(python: Path) -> dict[str, str]:
    listing = json.loads(_run([str(python), "-m", "pip", "list", "--format", "json"]))
    return {d["name"].lower(): d["version"] for d in listing}


def measure(source: str, workdir: Path) -> dict:
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + [TORCH], check=True)
    site = _site_packages(python)
    before, size_before = _distributions(python), _du_bytes(site)
    subprocess.run(pip + [source], check=True)
    after, size_after = _distributions(python), _du_bytes(site)
    added = {k: v for k, v in after.items() if k not in before}
    smoke = _run([str(python), "-c", SMOKE], cwd=workdir).strip()  # works without any extra
    return {"smoke": smoke, "source": source, "baseline": TORCH, "distributions_added": len(added),
            "added": dict(sorted(added.items())), "bytes_added": size_after - size_before,
            "megabytes_added": round((size_after - size_before) / 1e6, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="what to pip install: a source tree, sdist or wheel")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stae-install-") as tmp:
        result = measure(args.source, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
