"""stae.report: docs/results.md and the README's results table from the stage JSON files.

The committed docs/results.md and README table must be exactly what the committed
docs/results/*.json render to (a drift guard: a hand edit of either, or a change of the
renderer that changes them, fails here)."""

import json
import shutil
from pathlib import Path

from stae.report import README_MARKS, ReportRuns, load_results, readme_table, render_report, update_readme

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def runs_of(out: Path) -> ReportRuns:
    """The run names as the stage JSON files record them (scripts/reproduce.py passes its own)."""
    js = load_results(out)
    rows = {m["run"]: row for row, m in (js["table2"] or {}).get("models", {}).items()}
    return ReportRuns(rows=rows, flow_runs=tuple((js["flow"] or {}).get("runs", ())))


def test_committed_results_page_is_what_the_committed_json_renders():
    assert render_report(RESULTS, quick=False, runs=runs_of(RESULTS)) == (ROOT / "docs" / "results.md").read_text()


def test_committed_readme_table_is_what_the_committed_json_renders():
    readme = (ROOT / "README.md").read_text()
    assert all(mark in readme for mark in README_MARKS)
    assert update_readme(readme, RESULTS, runs_of(RESULTS)) == readme
    table = readme_table(RESULTS, runs_of(RESULTS))  # the shipped models beyond the paper have their rows
    rv, ro = (json.loads((RESULTS / f"{s}.json").read_text()) for s in ("realvideo", "rollout"))
    q = rv["clips"]["bikes.mp4"]["mse_vs_copy"]["model"]
    assert f"video-gray64: next-frame MSE / copy-last's, bikes.mp4 | **{q:.3g}x**" in table
    mt = ro["metrics"]
    assert f"rollout-mmnist: OpenSTL MSE per frame / VPN nats per frame | **{mt['mse_per_frame']:.4g} / " in table


def test_report_without_results_says_not_yet_run(tmp_path):
    text = render_report(tmp_path, quick=False, runs=ReportRuns(rows={}, flow_runs=()))
    for title in ("Table 2", "Table 3", "Flow quality", "Label propagation", "Weakly-supervised segmentation", "Fig. 5",
                  "Fig. 7", "OpenSTL", "Shipped", "Ten frames ahead"):
        assert title in text
    assert text.count("\n\nnot yet run\n") == 10
    assert readme_table(tmp_path, ReportRuns(rows={}, flow_runs=())) == "No results yet: run `make reproduce`."


def test_quick_report_says_so_and_links_pictures_beside_it(tmp_path):
    shutil.copy(RESULTS / "figures.json", tmp_path)
    text = render_report(tmp_path, quick=True, runs=runs_of(RESULTS))
    assert "**QUICK MODE**" in text and f"`{tmp_path}`" in text and "![fig5](fig5.png)" in text


def test_run_rows_name_the_runs_in_flow(tmp_path):
    shutil.copy(RESULTS / "flow.json", tmp_path)
    runs = ReportRuns(rows={"t2-vanilla": "plain", "t2-vanilla-flow": "fixed"}, flow_runs=("t2-vanilla-flow", "t2-vanilla"))
    text = render_report(tmp_path, quick=True, runs=runs)
    assert "| model plain |" in text and "| model fixed |" in text


def test_propagation_section_has_both_modes_and_its_targets(tmp_path):
    for stage in ("propagation", "segmentation"):
        shutil.copy(RESULTS / f"{stage}.json", tmp_path)
    text = render_report(tmp_path, quick=True, runs=runs_of(RESULTS))
    section = text.split("## Label propagation")[1].split("## Weakly-supervised")[0]
    rows = [r.split(" |")[0] for r in section.split("\n\n")[3].splitlines()[2:]]  # Moving MNIST, labels of frame 0
    assert rows == ["| stae, observed mode (flow refined on the pair it labels)",
                    "| stae, predictive mode (flow predicted before the frame is seen)",
                    "| OpenCV DIS flow (sees the frame it labels), same rule", "| OpenCV DIS flow, hard labels (the earlier rule)",
                    "| copy the mask"]
    pr = json.loads((RESULTS / "propagation.json").read_text())
    done = "**yes**" if pr["targets"]["moving_mnist"]["observed_at_least_dis"] else "**no**"
    assert f"Observed mode at least DIS's (either rule) at every k: {done}" in section
    seg = text.split("## Weakly-supervised")[1]
    assert "| (b) + labels propagated by stae |" in seg and "![segmentation examples](segmentation.png)" in seg


def test_readme_table_between_the_marks(tmp_path):
    shutil.copy(RESULTS / "table2.json", tmp_path)
    runs = runs_of(RESULTS)
    text = "# x\n\n<!-- results-table -->\nold\n<!-- /results-table -->\n\n## Next\n"
    new = update_readme(text, tmp_path, runs)
    assert new.startswith("# x\n\n<!-- results-table -->\n| experiment |")
    assert new.endswith("<!-- /results-table -->\n\n## Next\n")
    assert "old" not in new and "| Table 2, binary Moving MNIST, BCE: conv-1enc-1lstm |" in new
    assert update_readme(new, tmp_path, runs) == new  # idempotent
    assert update_readme("no marks\n", tmp_path, runs) == "no marks\n"
    bce = json.loads((tmp_path / "table2.json").read_text())["models"]["conv-1enc-1lstm"]["bce"]
    assert f"**{bce:.4g}**" in new


def test_rollout_section_of_a_model_trained_from_a_fresh_start(tmp_path):
    ro = json.loads((RESULTS / "rollout.json").read_text())
    ro["pretraining"] = {"init_weights": None, "training": None}
    ro["total_minutes"] = ro["training"]["minutes"]
    (tmp_path / "rollout.json").write_text(json.dumps(ro))
    section = render_report(tmp_path, quick=True, runs=runs_of(RESULTS)).split("## Ten frames ahead")[1]
    t = ro["training"]
    assert "was trained from a fresh start by rollout training" in section and "fine-tun" not in section
    assert f"| {t['sequences_seen']:,} x {t['clip_frames']} frames, " in section  # no pretraining term
    assert "after the starting model" not in section
