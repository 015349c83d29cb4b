"""stae plot: training curves from metrics.jsonl."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from stae.cli import main
from stae.commands.plot import curve, run_curves
from stae.viz import smooth
from stae.training.run_dir import read_metrics
from stae.errors import StaeError


def write_run(d, losses, val=None):
    d.mkdir()
    lines = [{"kind": "train", "step": 10 * (i + 1), "epoch": 0, "loss": v, "bce": v * 2} for i, v in enumerate(losses)]
    lines += [{"kind": "val", "step": 10 * (i + 1), "total": v} for i, v in enumerate(val or [])]
    lines.append({"kind": "diverged", "step": 99, "loss": "nan"})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return d


def test_curves_and_png(tmp_path, capsys):
    a = write_run(tmp_path / "conv-1enc-1lstm", [0.5, 0.3, 0.2], val=[0.4])
    b = write_run(tmp_path / "fc-2enc-1lstm", [0.6, 0.5, 0.45])
    out = tmp_path / "fig6.png"
    assert main(["plot", str(a), str(b), "--out", str(out), "--kind", "both", "--logy"]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (640, 400)
    assert "conv-1enc-1lstm (val) (1 points)" in capsys.readouterr().out
    curves = run_curves([a, b], "loss", ("train", "val"))
    assert curves["conv-1enc-1lstm"] == [(10.0, 0.5), (20.0, 0.3), (30.0, 0.2)]
    assert curves["conv-1enc-1lstm (val)"] == [(10.0, 0.4)]  # "loss" of validation records is "total"
    assert "fc-2enc-1lstm (val)" not in curves
    assert curve(read_metrics(a, strict=True), "bce", "train")[-1] == (30.0, 0.4)
    assert main(["plot", str(a), "--out", str(out)]) == 2  # exists
    assert main(["plot", str(a), "--out", str(out), "--force", "--metric", "bce", "--names", "vanilla"]) == 0


def test_smooth_is_a_trailing_mean():
    pts = [(1, 1.0), (2, 3.0), (3, 5.0), (4, 7.0)]
    assert smooth(pts, 2) == [(1, 1.0), (2, 2.0), (3, 4.0), (4, 6.0)]
    assert smooth(pts, 1) == pts


def test_bad_runs_exit_2(tmp_path, capsys):
    out = str(tmp_path / "x.png")
    assert main(["plot", str(tmp_path / "nope"), "--out", out]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 1}\n{oops\n')
    assert main(["plot", str(bad), "--out", out]) == 2
    assert "metrics.jsonl:2: not a JSON line" in capsys.readouterr().err
    run = write_run(tmp_path / "r", [0.5])
    assert main(["plot", str(run), "--out", out, "--metric", "psnr"]) == 2
    err = capsys.readouterr().err
    assert "no train records with 'psnr'" in err and "bce, loss" in err
    assert main(["plot", str(run), "--out", str(tmp_path / "x.jpg")]) == 2
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(StaeError, match="2 name"):
        run_curves([run], names=["a", "b"])


def test_plot_a_real_training_run(tmp_path):
    """The metrics.jsonl that stae train writes (train and validation records) plots as is."""
    from stae.training import resolve, train
    from tests.helpers import tiny_raw, write_tiny_clips

    data = write_tiny_clips(tmp_path / "clips.npy")
    run = tmp_path / "run"
    train(resolve(tiny_raw(data, train={"max_steps": 4})), run)
    curves = run_curves([run], "loss", ("train", "val"))
    assert [x for x, _ in curves["run"]] == [1.0, 2.0, 3.0, 4.0]
    assert curves["run (val)"]
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png"), "--kind", "both", "--metric", "loss"]) == 0
    assert main(["plot", str(run), "--out", str(tmp_path / "h.png"), "--metric", "huber", "--logy"]) == 0
