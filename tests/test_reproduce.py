"""scripts/reproduce.py, piece by piece (the whole --quick run trains six models: minutes, not
seconds). Runs are faked: a tiny untrained model saved as a step checkpoint, a metrics.jsonl
and a result.json, which is exactly what the stages read."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from stae.checkpoint import load_model, save_model
from stae.model.autoencoder import SpatioTemporalAutoencoder
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


rp = _load("reproduce")

TINY = rp.Budget(test_clips=2, rollout_clips=2, propagation_sequences=1, constant_train_sequences=2,
                 figure_sequences=1, video_frames=12)


def fake_run(runs: Path, name: str, output: str = "sigmoid", steps: int = 4) -> Path:
    run = runs / name
    model = SpatioTemporalAutoencoder(tiny_config(output=output))
    save_model(run / f"step-{steps:07d}" / "model.safetensors", model)
    recs = [{"kind": "train", "step": s, "bce": 0.7 - 0.01 * s, "loss": 0.7 - 0.01 * s, "time": float(s)}
            for s in range(1, steps + 1)]
    recs += [{"kind": "val", "step": 2, "total": 0.5}, {"kind": "val", "step": steps, "total": 0.6}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    summary = {"preset": "conv-1enc-1lstm", "recipe": "fast", "optimizer": "adamw", "lr": 2e-3, "schedule": "onecycle",
               "batch_size": 2, "loss": "bce", "loss_steps": "all", "updates": steps, "sequences_seen": 2 * steps,
               "clip_frames": 11, "minutes": 0.1, "stopped": "done", "threads": 1, "max_minutes": 5.0}
    (run / rp.RESULT_NAME).write_text(json.dumps(summary))
    return run


def ctx_for(tmp_path: Path, train: bool = False) -> "rp.Ctx":
    out = tmp_path / "results"
    out.mkdir()
    return rp.Ctx(out=out, runs=tmp_path / "runs", budget=TINY, quick=True, train=train,
                  weights_dir=tmp_path / "weights", log=lambda m: None)


def test_report_without_results_says_not_yet_run(tmp_path):
    text = rp.render_report(tmp_path, quick=False)
    for title in ("Table 2", "Table 3", "Flow quality", "Label propagation", "Fig. 5", "Fig. 7", "OpenSTL", "Shipped"):
        assert title in text
    assert text.count("\n\nnot yet run\n") == 8


def test_missing_run_is_not_trained_with_no_train(tmp_path):
    ctx = ctx_for(tmp_path)
    assert rp.ensure_run(ctx, "t2-vanilla") is None
    (ctx.runs / "t2-vanilla").mkdir(parents=True)  # in progress: no result.json
    assert rp.ensure_run(ctx, "t2-vanilla") is None
    fake_run(ctx.runs, "t2-conv-2enc-1lstm")
    assert rp.ensure_run(ctx, "t2-conv-2enc-1lstm")["updates"] == 4


def test_quick_runs_get_tiny_budgets(tmp_path):
    ctx = ctx_for(tmp_path)
    sets = rp.run_sets(ctx, "t2-vanilla")
    assert sets[-len(rp.QUICK_SETS):] == rp.QUICK_SETS and "train.max_steps=2" in sets
    ctx.quick = False
    assert rp.run_sets(ctx, "t2-vanilla") == rp.RUNS["t2-vanilla"][1]


def test_best_step_follows_the_lowest_validation_loss(tmp_path):
    run = fake_run(tmp_path, "r")
    assert rp.best_step(run) == 2


def test_table2_with_one_run_measured_and_one_not(tmp_path):
    ctx = ctx_for(tmp_path)
    fake_run(ctx.runs, "t2-vanilla")
    res = rp.stage_table2(ctx)
    v = res["models"]["conv-1enc-1lstm"]
    assert v["status"] == "measured" and v["paper_bce"] == 0.12827 and v["params"] > 0
    assert 0 < v["bce"] < 20 and v["training"]["sequences_seen"] == 8
    assert res["models"]["conv-2enc-1lstm"]["status"] == "not yet run"
    assert res["models"]["conv-1enc-1lstm, flow fixes"]["status"] == "not yet run"
    c = res["baselines"]["constant"]
    assert 0.01 < c["p"] < 0.5 and 0 < c["bce"] < math.log(2)  # sparse digits: well below a coin flip
    assert set(res["baselines"]) == {"constant", "copy_last", "dis"}
    assert res["goal"]["met_by"] == []  # an untrained model cannot reach 0.0835
    assert (ctx.out / "table2_curves.png").stat().st_size > 0
    # the evaluation is cached in the run: a second call reads it
    assert list((ctx.runs / "t2-vanilla").glob("eval-next-binary-2.json"))
    rp.write_json(ctx.out / "table2.json", res)
    text = rp.render_report(ctx.out, quick=True)
    assert f"**{v['bce']:.5g}**" in text and "| conv-2enc-1lstm | as the paper | | not yet run | 0.1181 | |" in text


def test_ship_writes_a_loadable_model_that_predicts(tmp_path):
    ctx = ctx_for(tmp_path)
    fake_run(ctx.runs, rp.SHIP_RUN)
    res = rp.stage_ship(ctx)
    path = ctx.weights_dir / "vanilla-mmnist.safetensors"
    assert res["bytes"] == path.stat().st_size and len(res["sha256"]) == 64 and res["run"] == rp.SHIP_RUN
    model = load_model(path)
    src = load_model(ctx.runs / rp.SHIP_RUN)
    x = torch.rand(1, 3, 1, 16, 16)
    assert torch.equal(model(x).frames, src(x).frames)
    assert json.loads(__import__("stae.checkpoint", fromlist=["x"]).read_metadata(path)["stae_training"])["updates"] == 4


def test_flow_and_propagation_stages_report_each_vanilla_run(tmp_path):
    ctx = ctx_for(tmp_path)
    fake_run(ctx.runs, "t2-vanilla-flow")  # the other vanilla run is missing
    fl = rp.stage_flow(ctx)
    assert fl["runs"]["t2-vanilla"]["status"] == "not yet run"
    d = fl["runs"]["t2-vanilla-flow"]["diagnosis"]
    assert fl["runs"]["t2-vanilla-flow"]["epe"] > 0 and 0 <= d["samples_off_the_map"] <= 1
    assert set(fl["baselines"]) == {"dis", "copy_last"}
    pr = rp.stage_propagation(ctx)
    assert set(pr["iou"]) == {"t2-vanilla-flow", "dis", "copy_first"} and set(pr["iou"]["dis"]) == {"1", "5", "10"}
    rp.write_json(ctx.out / "flow.json", fl)
    rp.write_json(ctx.out / "propagation.json", pr)
    text = rp.render_report(ctx.out, quick=True)
    assert "| model conv-1enc-1lstm | not yet run |" in text and "| copy the mask |" in text


def test_stage_skipped_when_its_json_exists(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "flow.json").write_text("{}")
    rc = rp.main(["--quick", "--stages", "flow", "--no-train", "--out", str(out), "--runs", str(tmp_path / "runs")])
    assert rc == 0
    assert "exists: skipped" in capsys.readouterr().out
    assert (out / "flow.json").read_text() == "{}"  # untouched
    assert (out / "results.md").is_file()


def test_forced_stage_keeps_the_rows_of_runs_it_cannot_measure(tmp_path, capsys):
    """--force --no-train with one of openstl's runs missing: the missing run's row is kept
    from the previous JSON (marked kept_from), the present run's row is measured anew."""
    out = tmp_path / "results"
    out.mkdir()
    fake_run(tmp_path / "runs", "t3-both", output="linear")
    old_row = {"status": "measured", "note": "old", "params": 1, "training": {"sequences_seen": 5},
               "metrics": {"mse_per_frame": 1.0, "mae_per_frame": 2.0, "ssim": 0.5, "psnr": 10.0}}
    (out / "openstl.json").write_text(json.dumps({"written_utc": "2026-01-01T00:00:00Z", "models": {
        "t3-both": {**old_row, "note": "stale"}, rp.SHIP_RUN: old_row}}))
    rc = rp.main(["--quick", "--stages", "openstl", "--force", "--no-train", "--out", str(out),
                  "--runs", str(tmp_path / "runs")])
    assert rc == 0
    rows = json.loads((out / "openstl.json").read_text())["models"]
    assert rows[rp.SHIP_RUN] == {**old_row, "kept_from": "2026-01-01T00:00:00Z"}
    assert rows["t3-both"]["status"] == "measured" and rows["t3-both"]["note"] != "stale"
    assert "kept_from" not in rows["t3-both"]


def test_carry_over_keeps_only_measured_rows():
    old = {"written_utc": "T0", "losses": {"a": {"status": "measured", "l2": 1}, "b": {"status": "not yet run"}}}
    new = {"losses": {"a": {"status": "not yet run"}, "b": {"status": "not yet run"}, "c": {"status": "not yet run"}}}
    got = rp.carry_over(old, new)["losses"]
    assert got == {"a": {"status": "measured", "l2": 1, "kept_from": "T0"}, "b": {"status": "not yet run"},
                   "c": {"status": "not yet run"}}


TINY_TRAIN = ["data.size=32", "data.num_frames=12", "model.preset=conv-1enc-1lstm"]


def test_train_missing_runs_stae_train_in_lanes(tmp_path, monkeypatch):
    # Real `stae train` subprocesses, two side by side, with the quick budgets: a binary (BCE)
    # Table 2 run and a Table 3 run with the intensity term only.
    ctx = ctx_for(tmp_path, train=True)
    monkeypatch.setattr(rp, "QUICK_SETS", rp.QUICK_SETS + TINY_TRAIN)
    (ctx.runs / "t3-gradient").mkdir(parents=True)  # started elsewhere: never retrained
    rp.train_missing(ctx, ["t2-vanilla", "t3-intensity", "t3-gradient", "t2-vanilla"])
    assert sorted(p.name for p in ctx.runs.iterdir()) == ["t2-vanilla", "t2-vanilla.log", "t3-gradient",
                                                          "t3-intensity", "t3-intensity.log"]
    t2 = rp.ensure_run(ctx, "t2-vanilla")
    assert (t2["updates"], t2["stopped"], t2["binary"], t2["model_options"]) == (
        2, "done", True, {"fft_conv": True, "subpixel_decoder": True})
    rec = [json.loads(x) for x in (ctx.runs / "t2-vanilla" / "metrics.jsonl").read_text().splitlines()]
    assert any("bce" in r for r in rec if r.get("kind") == "train")
    tr = [json.loads(x) for x in (ctx.runs / "t3-intensity" / "metrics.jsonl").read_text().splitlines()
          if '"train"' in x]
    assert "intensity" in tr[-1] and "gradient" not in tr[-1] and "huber" in tr[-1]
    assert rp.ensure_run(ctx, "t3-gradient") is None  # no result.json: not used, not retrained
    assert not (ctx.runs / "t3-gradient.log").exists()


def test_run_command_is_stae_train():
    ctx = rp.Ctx(out=Path("o"), runs=Path("r"), budget=TINY, quick=False, train=True, weights_dir=Path("w"))
    cmd = rp.run_command(ctx, "t3-both")
    assert cmd[1:4] == ["-m", "stae", "train"] and cmd[-2:] == ["--out", str(Path("r") / "t3-both")]
    assert "train.loss=eq5" in cmd and cmd[4].endswith("configs/table3-float.yaml")


def test_readme_table_between_the_marks(tmp_path):
    ctx = ctx_for(tmp_path)
    fake_run(ctx.runs, "t2-vanilla")
    rp.write_json(ctx.out / "table2.json", rp.stage_table2(ctx))
    text = "# x\n\n<!-- results-table -->\nold\n<!-- /results-table -->\n\n## Next\n"
    new = rp.update_readme(text, ctx.out)
    assert new.startswith("# x\n\n<!-- results-table -->\n| experiment |") and new.endswith("<!-- /results-table -->\n\n## Next\n")
    assert "old" not in new and "| Table 2, binary Moving MNIST, BCE: conv-1enc-1lstm |" in new
    assert rp.update_readme(new, ctx.out) == new  # idempotent
    assert rp.update_readme("no marks\n", ctx.out) == "no marks\n"
