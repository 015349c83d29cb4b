"""Packaging: one version (pyproject.toml), a lean base install, the research-package files."""

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

import stae
from stae import _version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
# What `pip install stae` (no extras) must not pull: mlxtend's stack (scipy, pandas,
# scikit-learn, joblib; ~250 MB) and the optional extras' packages.
NOT_IN_BASE = {"mlxtend", "pandas", "scikit-learn", "sklearn", "scipy", "joblib", "tensorboard",
               "huggingface-hub", "opencv-python-headless", "onnx", "onnxruntime", "scikit-video"}


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def _extra(requirement: str):
    m = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
    return m.group(1) if m else None


def _pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def test_version_has_one_source():
    version = _pyproject()["project"]["version"]
    assert stae.__version__ == metadata.version("stae") == version
    assert _version.version_from_pyproject(PYPROJECT) == version
    assert not re.search(r'^__version__\s*=\s*["\']', (ROOT / "src/stae/__init__.py").read_text(), re.M)


def test_version_of_an_uninstalled_source_tree_comes_from_pyproject(monkeypatch, tmp_path):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_version.metadata, "version", not_installed)
    assert _version.get_version() == _pyproject()["project"]["version"]
    monkeypatch.setattr(_version, "_PYPROJECT", tmp_path / "missing.toml")
    monkeypatch.setattr(_version.version_from_pyproject, "__defaults__", (tmp_path / "missing.toml",))
    assert _version.get_version() == "0+unknown"


def test_version_from_pyproject_reads_the_project_table(tmp_path):
    p = tmp_path / "pyproject.toml"
    p.write_text('[tool.x]\nversion = "9"\n[project]\nname = "stae"\nversion = "1.2.3"\n[other]\nversion = "7"\n')
    assert _version.version_from_pyproject(p) == "1.2.3"
    p.write_text('[project]\nname = "stae"\n[tool.x]\nversion = "9"\n')
    assert _version.version_from_pyproject(p) is None
    assert _version.version_from_pyproject(tmp_path / "none.toml") is None


def test_cli_version(capsys):
    from stae.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"stae {stae.__version__}"


def test_installed_base_requirements_are_lean_and_match_pyproject():
    requires = metadata.requires("stae") or []
    base = {_name(r) for r in requires if _extra(r) is None}
    assert not base & NOT_IN_BASE, f"base install pulls {sorted(base & NOT_IN_BASE)}"
    extras = {(_name(r), _extra(r)) for r in requires if _extra(r)}
    assert ("tensorboard", "tensorboard") in extras and ("huggingface-hub", "hub") in extras
    # The installed metadata is this tree's (not a stale install): same base requirements.
    declared = {_name(r) for r in _pyproject()["project"]["dependencies"]}
    assert base == declared, "the installed stae is stale: pip install -e . again"
    all_extra = next(r for r in _pyproject()["project"]["optional-dependencies"]["all"])
    assert {"tensorboard", "hub"} <= set(re.search(r"\[(.*)\]", all_extra).group(1).split(","))


def test_every_dependency_says_why():
    """Each requirement line of [project] dependencies has its reason in a comment above it."""
    lines = PYPROJECT.read_text(encoding="utf-8").splitlines()
    start = lines.index("dependencies = [")
    block = lines[start + 1:lines.index("]", start)]
    for i, line in enumerate(block):
        if line.strip().startswith('"'):
            assert i and block[i - 1].strip().startswith("#"), f"no comment saying why for {line.strip()}"


def test_digits_need_no_mlxtend():
    code = ("import importlib.abc, sys\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('mlxtend', 'pandas', 'sklearn', 'scipy', 'tensorboard'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from stae.data import MovingMNIST\n"
            "print(MovingMNIST(2, seed=0)[1]['clip'].shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "torch.Size([20, 1, 64, 64])"


def test_license_and_citation():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 the stae authors" in text
    assert _pyproject()["project"]["license"] == "MIT"
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and "version" not in cff
    (paper,) = cff["references"]
    assert paper["title"] == "Spatio-temporal video autoencoder with differentiable memory"
    assert [a["family-names"] for a in paper["authors"]] == ["Pătrăucean", "Handa", "Cipolla"]
    assert paper["year"] == 2015 and "arXiv:1511.06309" in str(paper["identifiers"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "@article{patraucean2015" in readme and "@software{stae" in readme
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog and f"## [{stae.__version__}]" in changelog
