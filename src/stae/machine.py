"""The machine a figure was measured on, described once for every result file (training
summaries, benchmarks, reports): CPU model and flags, cores, threads, torch, load."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch


def _cpuinfo(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform module says."""
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> list[str]:
    """The vector-instruction flags that decide which kernels are fast (AVX-512, AMX, ...)."""
    flags = set(_cpuinfo("flags").split())
    return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma", "avx_vnni")))


def cores() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """1/5/15-minute load average (other work on the machine slows every timing)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def describe() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu": cpu_model(),
        "cores_available": cores(),
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": cpu_flags(),
        "cuda": torch.cuda.is_available(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": load_average(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def describe_line(m: dict[str, Any]) -> str:
    """One line of :func:`describe`'s dict, for tables and logs."""
    la = m.get("loadavg") or [0, 0, 0]
    return (f"{m['cpu']}, {m['cores_available']} cores, torch {m['torch']} ({m['torch_threads']} threads); "
            f"load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} (1/5/15 min) at {m['time_utc']}")
