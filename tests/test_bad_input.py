"""Issue 18: every bad input is one clear line, Ctrl-C keeps the work, a finished run is never
rewritten. Each cause is driven through the CLI: most cases in process (``stae.cli.main``), a
representative of each in a real subprocess (exit status, one ``stae: error:`` line, no
traceback). Every case checks that no existing file changed (checksums before and after).
docs/reliability.md lists these promises and this module as their test."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save

from stae.cli import main
from stae.model.autoencoder import SpatioTemporalAutoencoder
from stae.training import resolve, train
from stae.training import run_dir as rd
from stae.weights import load_model, save_model
from tests.helpers import encode_video, tiny_config, tiny_raw, write_tiny_clips

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ the world
def _video(path: Path, n: int = 14, size: int = 16) -> Path:
    frames = []
    for t in range(n):
        f = np.zeros((size, size, 3), np.uint8)
        f[4:10, (t % 8):(t % 8) + 6] = 220
        frames.append(f)
    return encode_video(path, frames, "mpeg4", "yuv420p", 25)


def _checkpoint_with(path: Path, good: Path, config: dict | None = None, weights=None) -> Path:
    """A copy of checkpoint ``good`` with its stored config changed and/or its tensors mapped."""
    state = load_file(str(good))
    with safe_open(str(good), "pt") as f:
        meta = dict(f.metadata())
    cfg = json.loads(meta["stae_model_config"])
    cfg.update(config or {})
    meta["stae_model_config"] = json.dumps(cfg)
    path.write_bytes(save({k: weights(v) if weights else v for k, v in state.items()}, metadata=meta))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs and outputs that every case must leave exactly as they were."""
    w = tmp_path_factory.mktemp("world")
    clips = write_tiny_clips(w / "clips.npy")
    ckpt = save_model(w / "tiny.safetensors", SpatioTemporalAutoencoder(tiny_config()))
    x = np.load(clips)
    np.save(w / "nan.npy", np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x).astype(np.float32))
    np.save(w / "u8float.npy", (x * 255).astype(np.float32))
    np.save(w / "negative.npy", (x - 0.5).astype(np.float32))
    _checkpoint_with(w / "negkernel.safetensors", ckpt, {"spatial_kernel": -7})
    _checkpoint_with(w / "wide.safetensors", ckpt, {"memory_channels": [200000]})
    _checkpoint_with(w / "nanweights.safetensors", ckpt, weights=lambda v: v * float("nan"))
    _checkpoint_with(w / "int32.safetensors", ckpt, weights=lambda v: v.to(torch.int32))
    (w / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (w / "latin1.yaml").write_bytes("train:\n  lr: caf\xe9\n".encode("latin-1"))
    _npz_bad_meta(w / "badmeta.npz")
    _npz_bomb(w / "bomb.npz")
    (w / "eval.json").write_text('{"kept": true}\n')
    (w / "eval_next.json").write_text('{"kept": true}\n')
    (w / "warp").mkdir()
    (w / "warp" / "warp_check.json").write_text('{"kept": true}\n')
    _warp_inputs(w)
    video = _video(w / "one.mp4")
    run = w / "finished"
    cfg = resolve(tiny_raw(clips, train={"max_steps": 4}, checkpoint={"every_steps": 2}))
    train(cfg, run)
    return {"root": w, "clips": clips, "ckpt": ckpt, "video": video, "run": run}


def _npz_bad_meta(path: Path) -> None:
    frames = np.zeros((1, 6, 16, 16), np.uint8)
    with zipfile.ZipFile(path, "w") as z:
        for name, arr in (("frames", frames), ("meta", np.array("{not json"))):
            b = io.BytesIO()
            np.save(b, arr)
            z.writestr(name + ".npy", b.getvalue())


def _npz_bomb(path: Path) -> None:
    """A deflated 'frames' member whose array header claims 10^8 clips: a few bytes on disk."""
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": "|u1", "fortran_order": False, "shape": (10**8, 20, 64, 64)})
    b.write(bytes(1000))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("frames.npy", b.getvalue())


def _warp_inputs(w: Path) -> None:
    from PIL import Image

    from stae.flowio import write_flo

    img = (np.random.default_rng(0).random((16, 20)) * 255).astype(np.uint8)
    Image.fromarray(img).save(w / "frame.png")
    Image.fromarray(img).save(w / "next.png")
    write_flo(w / "flow.flo", np.zeros((16, 20, 2), np.float32))


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def refused(capsys, world, args: list[str], *needles: str) -> str:
    """``stae ARGS`` in process: non-zero, one ``stae: error:`` line naming ``needles``, nothing
    changed under the world's folder. Returns the line."""
    before = snapshot(world["root"])
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0, err
    assert len(lines) == 1 and lines[0].startswith("stae: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert snapshot(world["root"]) == before
    return lines[0]


def in_subprocess(world, args: list[str], *needles: str, rc: int = 2) -> None:
    """The same through a real ``python -m stae``: exit ``rc``, one line, no traceback."""
    before = snapshot(world["root"])
    r = subprocess.run([sys.executable, "-m", "stae", *map(str, args)], capture_output=True, text=True,
                       timeout=120, cwd=world["root"], env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == rc, r.stderr
    assert "Traceback" not in r.stderr and len(lines) == 1 and lines[0].startswith("stae: error: "), r.stderr
    for n in needles:
        assert n in lines[0]
    assert snapshot(world["root"]) == before


# ------------------------------------------------------------------------------ 1. numbers
@pytest.mark.parametrize("override", ["train.max_steps=-5", "train.lr=.nan", "train.grad_clip_value=-1",
                                      "model.encoder_channels=[0]", "model.spatial_kernel=-7", "train.betas=[2,3]",
                                      "data.train_sequences=0", "model.memory_channels=[200000]"])
def test_1_config_ranges_are_checked_when_resolved(capsys, world, override):
    key = override.split("=")[0]
    refused(capsys, world, ["train", "--print-config", "--set", override], key)


def test_1_flags_and_sizes(capsys, world, tmp_path):
    ck, clips = world["ckpt"], world["clips"]
    refused(capsys, world, ["predict", ck, clips, "--out", tmp_path / "p", "--fps", "nan"], "--fps")
    refused(capsys, world, ["demo", "--minutes", "inf", "--out", tmp_path / "d"], "--minutes")
    refused(capsys, world, ["demo", "--threads", "-2", "--out", tmp_path / "d"], "--threads")
    refused(capsys, world, ["export", ck, "--format", "torchscript", "--out", tmp_path / "m.pt", "--batch", "0"], "--batch")
    refused(capsys, world, ["propagate", ck, "--moving-mnist", "0", "--image-size", "100000"], "--image-size")
    # sizes are bounded by what the machine holds: "needs N GB" before allocating
    for args in (["data", "moving-mnist", "--out", tmp_path / "m.npz", "--size", "1000000"],
                 ["data", "moving-mnist", "--out", tmp_path / "m.npz", "--num", "100000000", "--quiet"],
                 ["predict", ck, clips, "--out", tmp_path / "p", "--size", "1000000"],
                 ["export", ck, "--format", "torchscript", "--out", tmp_path / "m.pt", "--size", "1000000"],
                 ["evaluate", ck, "--size", "1000000", "--out", tmp_path / "e.json"]):
        refused(capsys, world, args, "needs", " GB")
    assert not list(tmp_path.iterdir())
    in_subprocess(world, ["train", "--print-config", "--set", "train.max_steps=-5"], "train.max_steps")


# ------------------------------------------------------------------------------ 2. checkpoints
@pytest.mark.parametrize("name, needle", [("negkernel", "spatial_kernel"), ("wide", "memory_channels"),
                                          ("nanweights", "NaN"), ("int32", "dtype I32")])
def test_2_checkpoint_metadata_is_checked_before_building(capsys, world, tmp_path, name, needle):
    bad = world["root"] / f"{name}.safetensors"
    refused(capsys, world, ["export", bad, "--format", "torchscript", "--out", tmp_path / "m.pt"], needle, str(bad))
    if name == "nanweights":
        refused(capsys, world, ["evaluate", bad, "--data", world["clips"], "--context", "4", "--no-dis",
                                "--out", tmp_path / "e.json"], needle)
        in_subprocess(world, ["export", bad, "--format", "torchscript", "--out", tmp_path / "m.pt"], needle)


# ------------------------------------------------------------------------------ 3. frames
@pytest.mark.parametrize("name, needle", [("nan", "NaN"), ("u8float", "divide by 255"), ("negative", "outside [0, 1]")])
def test_3_frames_that_are_not_images(capsys, world, tmp_path, name, needle):
    f, ck = world["root"] / f"{name}.npy", world["ckpt"]
    refused(capsys, world, ["predict", ck, f, "--out", tmp_path / "p"], needle, str(f))
    refused(capsys, world, ["evaluate", ck, "--data", f, "--context", "4", "--no-dis", "--out", tmp_path / "e.json"],
            needle, str(f))
    raw = tiny_raw(f, train={"max_steps": 2})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    line = refused(capsys, world, ["train", tmp_path / "c.yaml", "--out", tmp_path / "run"], needle, str(f))
    assert "lr" not in line  # the data is named, not the learning rate
    if name == "nan":
        in_subprocess(world, ["predict", ck, f, "--out", tmp_path / "p"], needle)


# ------------------------------------------------------------------------------ 4. files of the wrong kind
def test_4_files_read_as_the_wrong_kind(capsys, world, tmp_path):
    w = world["root"]
    refused(capsys, world, ["plot", w / "binary.bin", "--out", tmp_path / "p.png"], "binary.bin", "not UTF-8")
    refused(capsys, world, ["train", w / "binary.bin", "--print-config"], "binary.bin")
    refused(capsys, world, ["train", w / "latin1.yaml", "--print-config"], "latin1.yaml", "not UTF-8")
    refused(capsys, world, ["data", "inspect", w / "badmeta.npz"], "badmeta.npz", "not JSON")
    refused(capsys, world, ["data", "inspect", w / "bomb.npz"], "bomb.npz", "needs")
    in_subprocess(world, ["plot", w / "binary.bin", "--out", tmp_path / "p.png"], "binary.bin")


# ------------------------------------------------------------------------------ 5. outputs
def test_5_outputs_are_refused_or_checked_before_work(capsys, world, tmp_path, monkeypatch):
    w, ck = world["root"], world["ckpt"]
    ev = ["evaluate", ck, "--data", world["clips"], "--context", "4", "--no-dis"]
    refused(capsys, world, ev + ["--out", w / "eval.json"], "eval.json", "--force")
    monkeypatch.chdir(w)
    refused(capsys, world, ev, "eval_next.json", "--force")  # the default name is refused too
    warp = ["warp-check", w / "frame.png", w / "flow.flo", w / "next.png"]
    refused(capsys, world, warp + ["--out", w / "warp"], "warp_check.json", "--force")
    refused(capsys, world, warp + ["--out", w / "eval.json"], "not a directory")
    refused(capsys, world, ev + ["--out", "/proc/stae/e.json"], "cannot write")
    refused(capsys, world, ["demo", "--out", "/proc/stae"], "cannot write")
    in_subprocess(world, ev + ["--out", w / "eval.json"], "--force")


# ------------------------------------------------------------------------------ 6. runs
def test_6_a_finished_run_is_never_modified(capsys, world, tmp_path):
    run = world["run"]
    refused(capsys, world, ["train", "--resume", run, "--out", tmp_path / "other"], "--out")
    refused(capsys, world, ["train", "--resume", run], "already finished")
    refused(capsys, world, ["train", "--resume", run, "--set", "train.max_steps=2"], "step 4")
    refused(capsys, world, ["train", "--resume", run, "--set", "model.preset=conv-2enc-1lstm"], "model")
    refused(capsys, world, ["train", "--resume", run, "--recipe", "paper"], "train.recipe")
    assert not (tmp_path / "other").exists()
    in_subprocess(world, ["train", "--resume", run], "already finished")


def test_6_failed_and_corrupt_runs_can_be_resumed(capsys, world, tmp_path):
    clips = world["clips"]
    # A run that failed before its first checkpoint: --resume starts it again from step 0.
    raw = tiny_raw(clips, train={"max_steps": 6}, checkpoint={"every_steps": 2})
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / rd.RESOLVED_NAME).write_text(resolve(raw).to_yaml())
    assert main(["train", "--resume", str(failed)]) == 0
    assert "starts again from step 0" in capsys.readouterr().err
    ref = load_model(failed / "step-0000006").state_dict()
    # A corrupt newest checkpoint is skipped for the intact one before it (and reaches the same weights).
    bad = tmp_path / "corrupt"
    train(resolve(raw), bad, stop_after=4)
    (bad / "step-0000004" / rd.STATE_NAME).write_bytes(b"torn")
    assert main(["train", "--resume", str(bad)]) == 0
    assert "skipping" in capsys.readouterr().err
    got = load_model(bad / "step-0000006").state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)


# ------------------------------------------------------------------------------ 7. interrupts
@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """A tiny run long enough to be interrupted, and its uninterrupted weights."""
    d = tmp_path_factory.mktemp("long")
    clips = write_tiny_clips(d / "clips.npy")
    raw = tiny_raw(clips, train={"max_steps": 300}, checkpoint={"every_steps": 100, "keep_last": 1, "val_batches": 1},
                   log={"every_steps": 5})
    (d / "c.yaml").write_text(yaml.safe_dump(raw))
    ref = train(resolve(raw), d / "ref")
    return d, load_model(d / "ref" / "step-0000300").state_dict(), ref


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_7_signals_during_training_save_a_checkpoint(long_run, tmp_path, capsys, sig, code):
    d, ref, _ = long_run
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "stae", "train", str(d / "c.yaml"), "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # interrupt after a few updates
        if rd.read_metrics(run) and rd.read_metrics(run)[-1].get("step", 0) >= 10:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "finished before the signal: " + proc.stderr.read()[-500:]
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, err
    assert "Traceback" not in err and f"stae: {sig.name}: stopped at update" in err
    steps = rd.step_checkpoints(run)
    assert len(steps) == 1 and 10 <= steps[0][0] < 300 and str(steps[0][1]) in err  # says where
    assert not list(run.glob(".tmp-*"))
    assert main(["train", "--resume", str(run), "--set", "log.progress=false"]) == 0
    got = load_model(run / "step-0000300").state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_7_interrupted_and_killed_data_generation(tmp_path):
    out = tmp_path / "mm.npz"
    stale = tmp_path / f".mm.npz.{2**22 + 12345}.abcd.tmp"  # a pid that cannot be running
    stale.write_bytes(b"x" * 100)
    cmd = [sys.executable, "-m", "stae", "data", "moving-mnist", "--out", str(out), "--num", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not [p for p in tmp_path.glob(".mm.npz.*.tmp") if p != stale]:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and "Traceback" not in err and "Exception" not in err, err
    assert not stale.exists()  # removed by this run: its writer is gone
    assert not out.exists() and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------------------ 8. one video, ignored options
def test_8_one_video_is_a_dataset(capsys, world, tmp_path):
    video, ck = world["video"], world["ckpt"]
    assert main(["evaluate", str(ck), "--data", str(video), "--context", "4", "--no-dis", "--size", "16",
                 "--out", str(tmp_path / "e.json")]) == 0
    clips = json.loads((tmp_path / "e.json").read_text())["clips"]
    assert [c["windows"] for c in clips.values()] == [10]  # all of it: 14 frames, every window of 5
    raw = tiny_raw(video, data={"source": "video", "size": 16, "grayscale": True, "val_fraction": 0.5},
                   train={"max_steps": 2, "batch_size": 1})
    assert train(resolve(raw), tmp_path / "run").step == 2


def test_8_ignored_options_are_refused(capsys, world, tmp_path):
    ck, clips = world["ckpt"], world["clips"]
    refused(capsys, world, ["evaluate", ck, "--mode", "next", "--horizon", "3"], "--horizon")
    refused(capsys, world, ["evaluate", ck, "--data", clips, "--binary"], "--binary", "clip file")
    refused(capsys, world, ["evaluate", ck, "--data", clips, "--size", "32"], "--size")
    refused(capsys, world, ["evaluate", ck, "--split", "val"], "--split")
    refused(capsys, world, ["data", "moving-mnist", "--out", tmp_path / "m.npz", "--threshold", "0.3"], "--binary")
    refused(capsys, world, ["data", "inspect", clips, "--clip-len", "5"], "--clip-len")
    refused(capsys, world, ["train", "--print-config", "--recipe", "paper", "--set", "train.recipe=fast"], "--recipe")
    in_subprocess(world, ["evaluate", ck, "--mode", "next", "--horizon", "3"], "--horizon")


# ------------------------------------------------------------------------------ 0. no code from files
class _Payload:
    """Unpickling this runs ``touch MARK``: what a hostile file would try."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self):
        return (os.system, (f"touch {self.mark}",))


def test_0_no_code_runs_from_files(capsys, world, tmp_path):
    import pickle

    mark = tmp_path / "ran"
    # a training state that is a hostile pickle
    run = tmp_path / "run"
    train(resolve(tiny_raw(world["clips"], train={"max_steps": 2}, checkpoint={"every_steps": 2})), run, stop_after=1)
    (run / "step-0000001" / rd.STATE_NAME).write_bytes(pickle.dumps(_Payload(mark)))
    assert main(["train", "--resume", str(run)]) == 2
    # a YAML config with a Python tag, a clip file holding an object array
    (tmp_path / "c.yaml").write_text(f'train: !!python/object/apply:os.system ["touch {mark}"]\n')
    assert main(["train", str(tmp_path / "c.yaml"), "--print-config"]) == 2
    np.save(tmp_path / "obj.npy", np.array([_Payload(mark)] * 4, dtype=object).reshape(1, 1, 2, 2), allow_pickle=True)
    assert main(["predict", str(world["ckpt"]), str(tmp_path / "obj.npy"), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert not mark.exists() and "Traceback" not in err
