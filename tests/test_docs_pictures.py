"""scripts/docs_pictures.py with a tiny model: it writes both pictures, byte-identical on a
second run (deterministic), and bad input leaves existing pictures untouched."""

import importlib.util
from pathlib import Path

from PIL import Image

from stae.checkpoint import save_model
from stae.model.autoencoder import SpatioTemporalAutoencoder
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("docs_pictures", ROOT / "scripts" / "docs_pictures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tiny_model(tmp_path: Path) -> Path:
    return save_model(tmp_path / "tiny.safetensors", SpatioTemporalAutoencoder(tiny_config(output="sigmoid")))


def test_writes_both_pictures_deterministically(tmp_path, capsys):
    script = _script()
    model = _tiny_model(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    assert script.main(["--model", str(model), "--out", str(a), "--iou-sequences", "1"]) == 0
    assert script.main(["--model", str(model), "--out", str(b), "--iou-sequences", "0"]) == 0
    out = capsys.readouterr().out
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


def test_bad_model_leaves_existing_pictures(tmp_path, capsys):
    script = _script()
    out = tmp_path / "img"
    out.mkdir()
    (out / "predict_figure.png").write_bytes(b"old")
    assert script.main(["--model", str(tmp_path / "missing.safetensors"), "--out", str(out)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert (out / "predict_figure.png").read_bytes() == b"old"
    assert not (out / "propagate_compare.gif").exists()
    assert [p.name for p in out.iterdir()] == ["predict_figure.png"]
