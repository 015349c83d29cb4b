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
