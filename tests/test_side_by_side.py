"""stae.side_by_side: processes run at most `lanes` at a time, each with its own thread count and
log file; a failing one does not stop the others."""

import sys

import pytest

from stae.errors import StaeError
from stae.side_by_side import Job, run_side_by_side, stae_train_command

# Prints its OMP_NUM_THREADS and the times it started and ended, then exits with status argv[1].
CHILD = ("import os, sys, time; print(os.environ['OMP_NUM_THREADS']); print(time.time(), flush=True); "
         "time.sleep(0.4); print(time.time()); sys.exit(int(sys.argv[1]))")


def _jobs(tmp_path, codes, threads=(1, 1, 1)):
    return [Job(f"j{i}", [sys.executable, "-c", CHILD, str(c)], tmp_path / f"j{i}.log", threads=t)
            for i, (c, t) in enumerate(zip(codes, threads))]


def _spans(jobs):
    out = []
    for j in jobs:
        threads, start, end = j.log.read_text().split()
        out.append((int(threads), float(start), float(end)))
    return out


def test_one_lane_runs_one_after_the_other(tmp_path):
    said = []
    jobs = _jobs(tmp_path, [0, 3, 0], threads=(1, 2, 3))
    assert run_side_by_side(jobs, lanes=1, say=said.append, poll_seconds=0.02) == {"j0": 0, "j1": 3, "j2": 0}
    spans = _spans(jobs)
    assert [t for t, _, _ in spans] == [1, 2, 3]  # each its own thread count
    assert spans[0][2] <= spans[1][1] and spans[1][2] <= spans[2][1]  # never two at once
    assert said[0] == f"  run j0: started, log {tmp_path / 'j0.log'}" and "  run j1: exit 3" in said


def test_two_lanes_overlap_and_a_failure_does_not_stop_the_others(tmp_path):
    jobs = _jobs(tmp_path, [1, 0, 0])
    assert run_side_by_side(jobs, lanes=2, poll_seconds=0.02) == {"j0": 1, "j1": 0, "j2": 0}
    (_, s0, e0), (_, s1, e1), (_, s2, _) = _spans(jobs)
    assert s1 < e0 and s0 < e1  # the first two side by side
    assert s2 >= min(e0, e1)  # the third waited for a free lane


def test_bad_arguments_name_the_parameter(tmp_path):
    with pytest.raises(StaeError, match="lanes"):
        run_side_by_side(_jobs(tmp_path, [0]), lanes=0)
    with pytest.raises(StaeError, match="unique"):
        run_side_by_side(_jobs(tmp_path, [0]) * 2)
    with pytest.raises(StaeError, match="threads"):
        run_side_by_side(_jobs(tmp_path, [0], threads=(0,)))
    assert not list(tmp_path.iterdir())  # nothing started


def test_stae_train_command():
    cmd = stae_train_command("configs/fast.yaml", ["train.lr=1e-3", "train.threads=1"], "runs/x")
    assert cmd == [sys.executable, "-m", "stae", "train", "configs/fast.yaml", "--set", "train.lr=1e-3",
                   "--set", "train.threads=1", "--out", "runs/x"]
    assert stae_train_command(None, [], "o")[4:] == ["--out", "o"]
