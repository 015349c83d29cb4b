"""scripts/docs_pictures.py, run as a subprocess with a tiny model: it writes both pictures,
byte-identical on a second run (deterministic), and bad input leaves existing pictures untouched."""

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from stae.weights import save_model
from stae.model.autoencoder import SpatioTemporalAutoencoder
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parent.parent


def docs_pictures(*args) -> subprocess.CompletedProcess:
    """``python scripts/docs_pictures.py ARGS`` (it sets one thread itself, as `make docs-pictures`)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_pictures.py"), *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def _tiny_model(tmp_path: Path) -> Path:
    return save_model(tmp_path / "tiny.safetensors", SpatioTemporalAutoencoder(tiny_config(output="sigmoid")))


def test_writes_both_pictures_deterministically(tmp_path):
    model = _tiny_model(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    ra = docs_pictures("--model", model, "--out", a, "--iou-sequences", "1")
    rb = docs_pictures("--model", model, "--out", b, "--iou-sequences", "0")
    assert ra.returncode == rb.returncode == 0, ra.stderr + rb.stderr
    out = ra.stdout
    assert "binary Moving MNIST test sequence 0" in out and "| 0 |" in out
    assert sorted(p.name for p in a.iterdir()) == ["predict_figure.png", "propagate_compare.gif"]
    for name in ("predict_figure.png", "propagate_compare.gif"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    with Image.open(a / "predict_figure.png") as im:
        # three rows (t = 9, 14, 18) of 64x64 frames drawn at scale 2, plus the caption strip and padding
        assert im.format == "PNG" and im.height == 14 + 3 * 128 + 4 * 2
    with Image.open(a / "propagate_compare.gif") as im:
        assert im.format == "GIF" and im.n_frames > 1
        # four panels side by side: truth | stae | DIS flow | copy first
        assert im.width > 4 * 128


def test_bad_model_leaves_existing_pictures(tmp_path):
    out = tmp_path / "img"
    out.mkdir()
    (out / "predict_figure.png").write_bytes(b"old")
    r = docs_pictures("--model", tmp_path / "missing.safetensors", "--out", out)
    assert r.returncode == 2 and "docs_pictures: error: checkpoint not found" in r.stderr
    assert (out / "predict_figure.png").read_bytes() == b"old"
    assert not (out / "propagate_compare.gif").exists()
    assert [p.name for p in out.iterdir()] == ["predict_figure.png"]
