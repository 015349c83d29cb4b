"""`stae demo` rejects bad input without touching existing outputs (the full demo takes minutes)."""

from stae.cli import main


def test_demo_bad_input(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    keep = out / "figure.png"
    keep.write_bytes(b"old")
    assert main(["demo", "--out", str(out), "--minutes", "1"]) == 2
    assert keep.read_bytes() == b"old"
    assert main(["demo", "--out", str(tmp_path / "new"), "--minutes", "0"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--minutes" in err


def test_demo_figure_shows_both_models(tmp_path):
    """The demo's picture: inputs, truth, then each model's prediction and flow, one row per clip."""
    import numpy as np
    from PIL import Image

    from stae.commands.demo import FIGURE_ROWS, _figure
    from stae.data.moving_mnist import default_dataset
    from stae.model import build_model
    from tests.helpers import tiny_config

    a, b = build_model(tiny_config(output="sigmoid")), build_model(tiny_config(output="sigmoid"))
    _figure(a, b, default_dataset("test", num_sequences=FIGURE_ROWS, binary=True), 4, tmp_path / "f.png")
    img = np.asarray(Image.open(tmp_path / "f.png"))
    assert img.shape[1] > img.shape[0] * 2  # eight panels side by side, three rows
