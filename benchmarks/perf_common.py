"""Shared helpers of the performance benchmarks: machine description, robust timing, JSON
output and tables.

The machine is shared (other processes run tests at the same time), so every figure is a
median over repeats, every JSON records ``os.getloadavg()`` before and after, and every
speed is also given as a ratio to a reference timed in the same run.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"

# Threads that wait for work sleep instead of spinning. On a machine shared with other
# processes a spinning OpenMP thread burns the time slice its partner needs, which slowed
# two-thread convolutions here by 2x or more; without other load it costs little. Set before
# torch loads (import this module first); an explicit OMP_WAIT_POLICY in the environment wins.
OMP_WAIT_POLICY_FROM_USER = os.environ.get("OMP_WAIT_POLICY")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def one_thread() -> None:
    """Pin every thread pool to one thread; call before numpy/torch load (data benchmarks)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Shortest wall time of ``repeats`` runs (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def setup_threads(threads: int | None = None) -> int:
    """Pin torch's intra-op pool (default: every CPU this process may use) and return it."""
    import torch

    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def machine() -> dict[str, Any]:
    """What the figures were measured on (:func:`stae.machine.describe`) and the OpenMP policy."""
    from stae.machine import describe

    return {**describe(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1, min_time: float = 0.0) -> list[float]:
    """Wall times (s) of ``repeats`` calls after ``warmup`` untimed ones; keeps going until at
    least ``min_time`` seconds were timed."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    t_start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - t_start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def summary(times: list[float]) -> dict[str, float]:
    """Median, 5th/95th percentile, min (seconds) and the count."""
    s = sorted(times)
    q = statistics.quantiles(s, n=20, method="inclusive") if len(s) > 1 else [s[0]] * 19
    return {"median_s": statistics.median(s), "p05_s": q[0], "p95_s": q[18], "min_s": s[0], "n": len(s)}


def write_json(name: str, payload: dict[str, Any], out: str | None = None) -> Path:
    """Write ``payload`` (plus the machine description and the load after the run) to
    benchmarks/results/<name>.json or ``out``; returns the path."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(payload)
    payload.setdefault("machine", machine())
    payload["loadavg_after"] = list(os.getloadavg())
    payload["command"] = " ".join([Path(sys.executable).name] + sys.argv)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A GitHub-markdown table of ``rows`` with (key, header) ``columns``."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(k)) for k, _ in columns) + " |")
    return "\n".join(lines)


def machine_line(m: dict[str, Any]) -> str:
    from stae.machine import describe_line

    return describe_line(m)
