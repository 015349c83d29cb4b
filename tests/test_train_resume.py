"""Training runs: resume equals uninterrupted (in process and after SIGKILL), checkpoints
(atomic, keep-last-k, best), NaN stop, corrupt checkpoints."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from stae.weights import load_model
from stae.cli import main
from stae.errors import StaeError
from stae.training import TrainingDiverged, load_run_config, resolve, train
from stae.training import run_dir as ck
from stae.training import loop
from stae.training.run_dir import read_metrics
from tests.helpers import tiny_raw, write_tiny_clips


@pytest.fixture()
def data(tmp_path):
    return write_tiny_clips(tmp_path / "clips.npy")


def train_losses(run_dir: Path) -> dict[int, float]:
    recs = read_metrics(run_dir)
    return {r["step"]: r["loss"] for r in recs if r["kind"] == "train"}


def weights(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return load_model(run_dir / name).state_dict()


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_equals_uninterrupted(tmp_path, data):
    cfg = resolve(tiny_raw(data))
    full = train(cfg, tmp_path / "full")
    assert full.step == 12 and full.stopped == "done"
    part = train(cfg, tmp_path / "part", stop_after=5)
    assert part.step == 5 and part.stopped == "stop_after"
    assert (tmp_path / "part" / "step-0000005").is_dir()
    res = train(cfg, tmp_path / "part", resume=True)
    assert res.resumed_from == 5 and res.step == 12
    la, lb = train_losses(tmp_path / "full"), train_losses(tmp_path / "part")
    assert list(la) == list(range(1, 13)) and la == lb  # exact loss curve, no duplicated records
    assert_same_weights(weights(tmp_path / "full", "step-0000012"), weights(tmp_path / "part", "step-0000012"))
    sa = ck.load_state(tmp_path / "full" / "step-0000012")
    sb = ck.load_state(tmp_path / "part" / "step-0000012")
    for k, v in sa["optimizer"]["state"].items():
        for name, t in v.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(sb["optimizer"]["state"][k][name]))
    # the config was written once, resolved, and is loadable again
    assert resolve(yaml.safe_load((tmp_path / "full" / "resolved.yaml").read_text())) == cfg
    # result.json: the budget; the resumed run's minutes add up its two sessions
    ra = json.loads((tmp_path / "full" / "result.json").read_text())
    rb = json.loads((tmp_path / "part" / "result.json").read_text())
    assert (ra["stopped"], ra["updates"], ra["sequences_seen"]) == ("done", 12, 12 * cfg.train.batch_size)
    assert (rb["stopped"], rb["resumed_from"], rb["updates"]) == ("done", 5, 12)
    sessions = read_metrics(tmp_path / "part")
    sessions = [r for r in sessions if r["kind"] == "session"]
    assert [(r["step"], r["resumed"]) for r in sessions] == [(0, False), (5, True)]
    assert ra["best_val"] == full.best_val


def test_training_minutes_adds_sessions():
    from stae.training.summary import training_minutes
    recs = [{"kind": "session", "step": 0}, {"kind": "train", "time": 30.0}, {"kind": "val", "time": 60.0},
            {"kind": "session", "step": 5}, {"kind": "train", "time": 90.0}, {"kind": "train", "time": "x"}]
    assert training_minutes(recs) == 2.5
    assert training_minutes([{"kind": "train", "time": 120.0}]) == 2.0  # a run from before session records


def test_summarize_after_the_fact(tmp_path, data, capsys):
    cfg = resolve(tiny_raw(data))
    train(cfg, tmp_path / "r", stop_after=5)
    (tmp_path / "r" / "result.json").unlink()
    capsys.readouterr()
    assert main(["train", "--summarize", str(tmp_path / "r")]) == 0
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    assert res["updates"] == 5 and res["stopped"].startswith("early") and res["summarized_after_the_fact"]
    assert json.loads(capsys.readouterr().out) == res
    assert main(["train", "--summarize", str(tmp_path)]) == 2  # not a run directory


def test_keep_last_and_best(tmp_path, data):
    cfg = resolve(tiny_raw(data, checkpoint={"every_steps": 2, "keep_last": 2}))
    train(cfg, tmp_path / "r")
    run = tmp_path / "r"
    assert [p.name for _, p in ck.step_checkpoints(run)] == ["step-0000010", "step-0000012"]
    assert not list(run.glob(".tmp-*")) and not list(run.glob(".old-*"))
    vals = {r["step"]: r["total"] for r in read_metrics(run) if r["kind"] == "val"}
    assert sorted(vals) == [2, 4, 6, 8, 10, 12]
    best_step = min(vals, key=vals.get)
    best = ck.load_state(run / "best")
    assert best["step"] == best_step and best["best_val"] == vals[best_step]
    for name in ("best", "step-0000012"):
        assert json.loads((run / name / "config.json").read_text())["encoder_channels"] == [4]
    # a new run never overwrites an existing one
    with pytest.raises(StaeError, match="--resume"):
        train(cfg, run)


def test_interrupted_write_is_repaired(tmp_path, data):
    cfg = resolve(tiny_raw(data, train={"max_steps": 8}))
    run = tmp_path / "r"
    train(cfg, run, stop_after=4)
    # a killed writer leaves a temporary dir and best/ moved aside mid-swap
    (run / ".tmp-step-0000006-123").mkdir()
    (run / ".tmp-step-0000006-123" / "model.safetensors").write_bytes(b"partial")
    os.rename(run / "best", run / ".old-best")
    res = train(cfg, run, resume=True)
    assert res.resumed_from == 4 and res.step == 8
    assert (run / "best" / "model.safetensors").is_file() and not list(run.glob(".*"))
    # extend a finished run from the command line: the new setting is kept for the next resume
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=10"]) == 0
    assert ck.step_checkpoints(run)[-1][0] == 10
    assert load_run_config(run).train.max_steps == 10


def test_corrupt_and_foreign_checkpoints(tmp_path, data):
    cfg = resolve(tiny_raw(data, train={"max_steps": 4}))
    run = tmp_path / "r"
    train(cfg, run)
    state = run / "step-0000004" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])  # truncated
    with pytest.raises(StaeError, match="state.pt: not a readable training state"):
        train(cfg, run, resume=True)
    torch.save({"something": torch.zeros(2)}, state)  # foreign
    with pytest.raises(StaeError, match="not a stae training state"):
        ck.load_state(run / "step-0000004")
    w = run / "best" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:50])
    with pytest.raises(StaeError, match="truncated or corrupt"):
        load_model(w)
    with pytest.raises(StaeError, match="no step-"):
        ck.latest_checkpoint(tmp_path)


def test_nan_stops_and_keeps_last_good(tmp_path, data, monkeypatch, capsys):
    real = loop.make_batch
    calls = {"n": 0}

    def poisoned(*a, **kw):
        calls["n"] += 1
        b = real(*a, **kw)
        return b * float("nan") if calls["n"] == 6 else b

    monkeypatch.setattr(loop, "make_batch", poisoned)
    cfg = resolve(tiny_raw(data))
    run = tmp_path / "r"
    with pytest.raises(TrainingDiverged) as e:
        train(cfg, run)
    msg = str(e.value)
    assert "loss became nan at step 6" in msg and "step-0000004" in msg and "\n" not in msg
    assert [p.name for _, p in ck.step_checkpoints(run)] == ["step-0000004"]
    assert all(torch.isfinite(v).all() for v in weights(run, "step-0000004").values())
    last = read_metrics(run)[-1]
    assert last["kind"] == "diverged" and last["step"] == 6
    # through the CLI: one line, exit 2
    calls["n"] = 0
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(tiny_raw(data)))
    assert main(["train", str(f), "--out", str(tmp_path / "r2")]) == 2
    assert "loss became nan" in capsys.readouterr().err


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, data):
    """A real training process killed with SIGKILL mid-run resumes to the uninterrupted result."""
    raw = tiny_raw(data, train={"max_steps": 100}, checkpoint={"every_steps": 10, "keep_last": 2, "val_batches": 1},
                   log={"every_steps": 5})
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(raw))
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "stae", "train", str(f), "--out", str(run)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(ck.step_checkpoints(run)) and ck.step_checkpoints(run)[-1][0] >= 20:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "training finished before it could be killed: " + proc.stderr.read().decode()[-500:]
        time.sleep(0.05)  # land somewhere inside the next steps (possibly mid-checkpoint)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = ck.step_checkpoints(run)[-1][0]
    assert killed_at < 100
    r = subprocess.run(cmd[:4] + ["--resume", str(run)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1000:]
    assert "finished: 100/100" in r.stdout
    ref = train(resolve(raw), tmp_path / "ref")
    assert ref.step == 100
    assert_same_weights(weights(run, "step-0000100"), weights(tmp_path / "ref", "step-0000100"))
    assert train_losses(run) == train_losses(tmp_path / "ref")
    assert not list(run.glob(".tmp-*"))


def test_tensorboard_and_metrics_log(tmp_path, data):
    pytest.importorskip("tensorboard")  # the tensorboard extra
    cfg = resolve(tiny_raw(data, train={"max_steps": 4}, log={"tensorboard": True, "image_every": 2}))
    run = tmp_path / "r"
    train(cfg, run)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for t in ("train/loss", "train/intensity", "train/gradient", "train/huber", "train/lr", "train/seq_per_s",
              "val/total"):
        assert t in tags["scalars"], t
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Images("train/input_target_prediction_flow")] == [2, 4]
    recs = read_metrics(run)
    assert recs[0]["kind"] == "session" and not recs[0]["resumed"]
    recs = [r for r in recs if r["kind"] == "train"]
    assert {"step", "epoch", "lr", "loss", "intensity", "gradient", "huber", "seq_per_s", "time"} <= set(recs[0])


@pytest.mark.parametrize("source", ["moving_mnist", "video"])
def test_other_data_sources(tmp_path, source):
    if source == "video":
        from PIL import Image
        import numpy as np
        for v in range(4):  # frame folders: a bright bar moving right
            d = tmp_path / "videos" / f"v{v}"
            d.mkdir(parents=True)
            for k in range(8):
                img = np.zeros((16, 16), np.uint8)
                img[4:8, (v + k) % 12:(v + k) % 12 + 4] = 255
                Image.fromarray(img).save(d / f"{k}.png")
        data = {"source": "video", "path": str(tmp_path / "videos"), "size": 16, "val_fraction": 0.25}
    else:
        data = {"source": "moving_mnist", "size": 32, "num_frames": 6, "train_sequences": 8, "val_sequences": 2}
    raw = tiny_raw(tmp_path / "unused.npy", data=data, train={"max_steps": 2, "amp": "bf16"})
    res = train(resolve(raw), tmp_path / "r")
    assert res.step == 2 and math.isfinite(res.last_loss) and res.last_val is not None


def test_flow_warmup_holds_theta_then_releases_it(tmp_path, data):
    def theta(name, warmup, steps):
        cfg = resolve(tiny_raw(data, train={"max_steps": steps, "flow_warmup_steps": warmup},
                               checkpoint={"every_steps": steps}))
        train(cfg, tmp_path / name)
        m = load_model(tmp_path / name / f"step-{steps:07d}")
        return torch.cat([p.flatten() for p in m.flow.parameters()]), m

    held2, m2 = theta("a", 2, 2)
    held1, m1 = theta("b", 2, 1)
    moved, _ = theta("c", 0, 1)
    assert torch.equal(held2, held1) and not torch.equal(moved, held1)  # Theta fixed for 2 updates
    assert not torch.equal(m2.decoder.net[-1].weight, m1.decoder.net[-1].weight)  # the rest trains
    released, _ = theta("d", 2, 3)
    assert not torch.equal(released, held2)  # and learns from update 3 on


def test_without_tensorboard_training_says_so_once(tmp_path, data, monkeypatch, capsys):
    monkeypatch.setattr("stae.training.run_log._summary_writer", lambda *args: None)  # as if not installed
    train(resolve(tiny_raw(data, train={"max_steps": 2}, log={"tensorboard": True})), tmp_path / "r")
    assert capsys.readouterr().out.count("TensorBoard logging is off") == 1
    assert [r["step"] for r in read_metrics(tmp_path / "r") if r.get("kind") == "train"] == [1, 2]
    assert not (tmp_path / "r" / "tb").exists()
