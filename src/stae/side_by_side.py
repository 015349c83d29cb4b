"""Run several processes side by side, each with its own thread count and log file.

``scripts/reproduce.py`` trains the runs its stages need this way, and
``benchmarks/recipe_wallclock.py`` trains its candidates at once so that they share the
machine alike. On a machine with few cores, two one-thread training runs side by side get
through more work than one run with two threads; each process is told its thread count through
``OMP_NUM_THREADS`` before torch starts its thread pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Optional, Sequence

from stae.errors import StaeError


@dataclass(frozen=True)
class Job:
    """One process: ``command`` run with ``threads`` OpenMP threads, stdout and stderr to ``log``."""

    name: str
    command: Sequence[str]
    log: Path  # overwritten
    threads: int = 1


def stae_train_command(config: Optional[str | Path], sets: Sequence[str], out: str | Path) -> list[str]:
    """The command line of ``stae train [CONFIG] --set S ... --out OUT`` with this Python."""
    cmd = [sys.executable, "-m", "stae", "train"] + ([str(config)] if config else [])
    for s in sets:
        cmd += ["--set", s]
    return cmd + ["--out", str(out)]


def run_side_by_side(jobs: Sequence[Job], lanes: int = 2, cwd: Optional[str | Path] = None,
                     say: Optional[Callable[[str], None]] = None, poll_seconds: float = 0.5) -> dict[str, int]:
    """Run ``jobs`` in order, at most ``lanes`` at a time, and wait for all of them.

    Returns each job's exit status by name (0: success); a failing job does not stop the others.
    ``say`` is told when a job starts and ends. If waiting is interrupted (Ctrl-C, an error),
    the jobs still running are terminated before the exception goes on.
    """
    _check(jobs, lanes)
    todo = list(jobs)
    running: list[tuple[Job, subprocess.Popen, IO[bytes]]] = []
    codes: dict[str, int] = {}
    try:
        while todo or running:
            while todo and len(running) < lanes:
                job = todo.pop(0)
                running.append(_start(job, cwd))
                if say:
                    say(f"  run {job.name}: started, log {job.log}")
            time.sleep(poll_seconds)
            for item in list(running):
                job, proc, log = item
                if proc.poll() is not None:
                    log.close()
                    running.remove(item)
                    codes[job.name] = proc.returncode
                    if say:
                        say(f"  run {job.name}: exit {proc.returncode}")
    finally:
        for _, proc, log in running:  # only when interrupted: every job has ended otherwise
            proc.terminate()
            proc.wait()
            log.close()
    return codes


def _check(jobs: Sequence[Job], lanes: int) -> None:
    if lanes < 1:
        raise StaeError(f"lanes must be >= 1, got {lanes}")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise StaeError(f"jobs: names must be unique, got {names}")
    for j in jobs:
        if j.threads < 1:
            raise StaeError(f"job {j.name}: threads must be >= 1, got {j.threads}")


def _start(job: Job, cwd: Optional[str | Path]) -> tuple[Job, subprocess.Popen, IO[bytes]]:
    env = {**os.environ, "OMP_NUM_THREADS": str(job.threads)}
    job.log.parent.mkdir(parents=True, exist_ok=True)
    log = open(job.log, "wb")
    try:
        proc = subprocess.Popen(list(job.command), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    except BaseException:
        log.close()
        raise
    return job, proc, log
