"""scripts/reproduce.py, run as a subprocess stage by stage (the whole --quick run trains six
models: minutes, not seconds). Runs are faked: a tiny untrained model saved as a step
checkpoint, a metrics.jsonl and a result.json, which is exactly what the stages read."""

import json
import math
import shlex
import shutil
from pathlib import Path

import torch

from stae.weights import load_model, read_metadata
from stae.training.run_dir import RESULT_NAME
from tests.helpers import fake_run, quick, reproduce

ROOT = Path(__file__).resolve().parents[1]
SHIP_RUN = "t2-vanilla-flow"


def test_committed_report_is_rendered_again_byte_for_byte(tmp_path):
    # Every stage's JSON exists: all are skipped, and the report comes out as committed.
    out = tmp_path / "results"
    shutil.copytree(ROOT / "docs" / "results", out, ignore=shutil.ignore_patterns("*.png"))
    r = reproduce("--no-train", "--out", out, "--runs", tmp_path / "runs")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("exists: skipped") == 12 and not (tmp_path / "runs").exists()
    assert (tmp_path / "results.md").read_bytes() == (ROOT / "docs" / "results.md").read_bytes()


def test_table2_with_one_run_measured_one_unfinished_one_missing(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "t2-vanilla")
    (runs / "t2-conv-2enc-1lstm").mkdir()  # started elsewhere: no result.json
    r = quick(tmp_path, "--stages", "table2")
    assert f"t2-conv-2enc-1lstm: {runs / 't2-conv-2enc-1lstm'} has no {RESULT_NAME}" in r.stdout
    assert f"run {SHIP_RUN}: not trained (--no-train)" in r.stdout
    res = json.loads((tmp_path / "results" / "table2.json").read_text())
    v = res["models"]["conv-1enc-1lstm"]
    assert v["status"] == "measured" and v["paper_bce"] == 0.12827 and v["params"] > 0
    assert 0 < v["bce"] < 20 and v["training"]["sequences_seen"] == 8 and v["checkpoint_step"] == 2
    assert res["models"]["conv-2enc-1lstm"]["status"] == "not yet run"
    assert res["models"]["conv-1enc-1lstm, flow fixes"]["status"] == "not yet run"
    c = res["baselines"]["constant"]
    assert 0.01 < c["p"] < 0.5 and 0 < c["bce"] < math.log(2)  # sparse digits: well below a coin flip
    assert set(res["baselines"]) == {"constant", "copy_last", "dis"}
    assert res["goal"]["met_by"] == []  # an untrained model cannot reach 0.0835
    assert (tmp_path / "results" / "table2_curves.png").stat().st_size > 0
    assert (runs / "t2-vanilla" / "eval-next-binary-8.json").is_file()  # the evaluation is cached in the run
    text = (tmp_path / "results" / "results.md").read_text()
    assert f"**{v['bce']:.5g}**" in text and "| conv-2enc-1lstm | as the paper | | not yet run | 0.1181 | |" in text


def test_flow_propagation_figures_and_ship_of_one_vanilla_run(tmp_path):
    run = fake_run(tmp_path / "runs", SHIP_RUN)  # the other vanilla run is missing
    quick(tmp_path, "--stages", "flow", "propagation", "figures", "ship")
    out = tmp_path / "results"
    fl = json.loads((out / "flow.json").read_text())
    assert fl["runs"]["t2-vanilla"]["status"] == "not yet run"
    d = fl["runs"][SHIP_RUN]["diagnosis"]
    assert fl["runs"][SHIP_RUN]["epe"] > 0 and 0 <= d["samples_off_the_map"] <= 1 and d["sequences"] == 8
    assert set(fl["baselines"]) == {"dis", "copy_last"}
    pr = json.loads((out / "propagation.json").read_text())  # the shipped models, by name: no run needed
    assert set(pr["datasets"]) == {"moving_mnist", "textures"} and pr["test_set"]["sequences"] == 2
    iou = pr["datasets"]["textures"]["iou"]
    assert set(iou) == {"predictive", "observed", "dis", "dis_hard", "copy_first"} and set(iou["dis"]) == {"1", "5", "10"}
    assert set(pr["targets"]["moving_mnist"]) == {"observed_at_least_dis", "predictive_above_copy", "predictive_gap_to_dis"}
    assert (out / "propagate_textures_compare.gif").stat().st_size > 0
    assert (out / "fig5.png").stat().st_size > 0 and (out / "fig5_lines.png").stat().st_size > 0
    ship = json.loads((out / "ship.json").read_text())
    path = out / "weights" / "vanilla-mmnist.safetensors"  # quick mode: never the package's folder
    assert ship["bytes"] == path.stat().st_size and len(ship["sha256"]) == 64 and ship["run"] == SHIP_RUN
    assert ship["checkpoint_step"] == 2  # the step of the lowest validation loss
    x = torch.rand(1, 3, 1, 16, 16)
    assert torch.equal(load_model(path)(x).frames, load_model(run)(x).frames)
    assert json.loads(read_metadata(path)["stae_training"])["updates"] == 4
    text = (out / "results.md").read_text()
    assert "| model conv-1enc-1lstm | not yet run |" in text and "| stae, observed mode" in text
    assert "(conv-1enc-1lstm, flow fixes)" in text  # the shipped run named by its Table 2 row


def test_stage_skipped_when_its_json_exists(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "flow.json").write_text("{}")
    r = quick(tmp_path, "--stages", "flow")
    assert "exists: skipped" in r.stdout
    assert (out / "flow.json").read_text() == "{}"  # untouched
    assert (out / "results.md").is_file()


def test_forced_stage_keeps_the_rows_of_runs_it_cannot_measure(tmp_path):
    """--force --no-train with one of openstl's runs missing: the missing run's row is kept
    from the previous JSON (marked kept_from), the present run's row is measured anew."""
    out = tmp_path / "results"
    out.mkdir()
    fake_run(tmp_path / "runs", "t3-both", output="linear")
    old_row = {"status": "measured", "note": "old", "params": 1, "training": {"sequences_seen": 5},
               "metrics": {"mse_per_frame": 1.0, "mae_per_frame": 2.0, "ssim": 0.5, "psnr": 10.0}}
    (out / "openstl.json").write_text(json.dumps({"written_utc": "2026-01-01T00:00:00Z", "models": {
        "t3-both": {**old_row, "note": "stale"}, SHIP_RUN: old_row}}))
    quick(tmp_path, "--stages", "openstl", "--force")
    rows = json.loads((out / "openstl.json").read_text())["models"]
    assert rows[SHIP_RUN] == {**old_row, "kept_from": "2026-01-01T00:00:00Z"}
    assert rows["t3-both"]["status"] == "measured" and rows["t3-both"]["note"] != "stale"
    assert "kept_from" not in rows["t3-both"]
    assert "(kept from the stage's run of 2026-01-01)" in (out / "results.md").read_text()


def _commands(stdout: str) -> dict[str, list[str]]:
    """--dry-run's lines "NAME: to train, N thread(s): COMMAND" -> {NAME: COMMAND as a list}."""
    return {line.split(":")[0]: shlex.split(line.split(" thread(s): ", 1)[1])
            for line in stdout.splitlines() if " thread(s): " in line}


def test_dry_run_prints_stae_train_commands_and_touches_nothing(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    fake_run(runs, "t3-intensity")
    (runs / "t3-gradient").mkdir()
    r = reproduce("--dry-run", "--stages", "table3", "--runs", runs, "--out", out, "--set", "train.device=cpu")
    assert r.returncode == 0, r.stderr
    assert "t3-intensity: finished" in r.stdout and "t3-gradient: unfinished" in r.stdout
    cmd = _commands(r.stdout)["t3-both"]
    assert cmd[1:4] == ["-m", "stae", "train"] and cmd[4].endswith("configs/table3-float.yaml")
    assert cmd[-4:] == ["--set", "train.device=cpu", "--out", str(runs / "t3-both")]  # --set comes last
    assert "train.loss=eq5" in cmd and "train.max_steps=2200" in cmd and "train.max_steps=2" not in cmd
    assert "t3-both: to train, 1 thread(s)" in r.stdout
    assert not out.exists() and sorted(p.name for p in runs.iterdir()) == ["t3-gradient", "t3-intensity"]
    # --quick appends its tiny budgets after the run's own, so they win
    cmd = _commands(reproduce("--quick", "--dry-run", "--stages", "table3", "--runs", runs, "--out", out).stdout)
    sets = cmd["t3-both"]
    assert sets.index("train.max_steps=2") > sets.index("train.max_steps=2200")


def test_missing_runs_are_trained_side_by_side(tmp_path):
    # Real `stae train` subprocesses side by side, with the quick budgets and a smaller model:
    # a binary (BCE) Table 2 run and a Table 3 run with the intensity term only.
    runs = tmp_path / "runs"
    for started_elsewhere in (SHIP_RUN, "t2-conv-2enc-1lstm", "t3-gradient", "t3-both"):
        (runs / started_elsewhere).mkdir(parents=True)  # never retrained
    r = reproduce("--quick", "--stages", "table2", "table3", "--out", tmp_path / "results", "--runs", runs,
                  "--set", "data.size=32", "--set", "data.num_frames=12", "--set", "model.preset=conv-1enc-1lstm")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        [SHIP_RUN, "t2-conv-2enc-1lstm", "t3-gradient", "t3-both", "t2-vanilla", "t2-vanilla.log", "t3-intensity",
         "t3-intensity.log"])
    assert all(f"run {n}: exit 0" in r.stdout for n in ("t2-vanilla", "t3-intensity"))
    t2 = json.loads((runs / "t2-vanilla" / RESULT_NAME).read_text())
    assert (t2["updates"], t2["stopped"], t2["binary"], t2["model_options"]) == (
        2, "done", True, {"fft_conv": True, "subpixel_decoder": True})
    rec = [json.loads(x) for x in (runs / "t2-vanilla" / "metrics.jsonl").read_text().splitlines()]
    assert any("bce" in r for r in rec if r.get("kind") == "train")
    tr = [json.loads(x) for x in (runs / "t3-intensity" / "metrics.jsonl").read_text().splitlines()
          if '"train"' in x]
    assert "intensity" in tr[-1] and "gradient" not in tr[-1] and "huber" in tr[-1]
    t3 = json.loads((tmp_path / "results" / "table3.json").read_text())["losses"]
    assert t3["intensity"]["status"] == "measured"
    assert t3["gradient"]["status"] == t3["both"]["status"] == "not yet run"  # no result.json: not used
