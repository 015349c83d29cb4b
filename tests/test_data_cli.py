"""`stae data moving-mnist` and `stae data inspect` end to end."""

import av
import numpy as np

from stae.cli import main
from stae.data import moving_mnist as mm
from stae.data.files import ClipFileDataset, load_clip_file, read_meta


def test_moving_mnist_command(tmp_path, capsys):
    out = tmp_path / "val.npz"
    rc = main(["data", "moving-mnist", "--out", str(out), "--split", "val", "--num", "5", "--seed", "9", "--lines",
               "--binary", "--truth", "--frames", "6", "--size", "48", "--speed", "0.05:0.2", "--quiet"])
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}: 5 sequences x 6 frames of 48x48") and "truth yes" in line
    g = mm.generate(9, range(5), split="val", lines=True, binary=True, num_frames=6, size=48, speed=(0.05, 0.2),
                    with_truth=True)
    np.testing.assert_array_equal(load_clip_file(out)[:, :, 0], g["frames"])
    np.testing.assert_array_equal(ClipFileDataset(out)[3]["flow"].numpy(), g["flow"][3])
    assert read_meta(out)["speed"] == [0.05, 0.2]
    # Existing output: one error line, exit 2, file untouched.
    before = out.read_bytes()
    assert main(["data", "moving-mnist", "--out", str(out), "--num", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"stae: error: {out}: already exists (use --force to overwrite)"
    assert out.read_bytes() == before
    assert main(["data", "moving-mnist", "--out", str(out), "--num", "2", "--quiet", "--force"]) == 0
    assert load_clip_file(out).shape == (2, 20, 1, 64, 64)


def test_inspect_command(tmp_path, capsys):
    f = tmp_path / "seq.npy"
    np.save(f, np.zeros((20, 3, 64, 64), np.uint8))
    assert main(["data", "inspect", str(f)]) == 0
    assert capsys.readouterr().out.strip() == f"{f}: 3 clips x 20 frames x 1 channel(s) of 64x64, uint8"
    v = tmp_path / "v.mkv"
    c = av.open(str(v), "w")
    s = c.add_stream("ffv1", rate=10)
    s.width, s.height, s.pix_fmt = 16, 16, "gray"
    for i in range(9):
        for p in s.encode(av.VideoFrame.from_ndarray(np.full((16, 16), i * 20, np.uint8), format="gray")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    assert main(["data", "inspect", str(tmp_path), "--clip-len", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"{v}: 9 frames, 2 clips", "1 videos, 9 frames, 2 clips of 4 frames (stride 1)"]
    assert main(["data", "inspect", str(tmp_path / "none")]) == 2
    assert "none: no such file or directory" in capsys.readouterr().err
