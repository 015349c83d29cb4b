"""The machine a figure was measured on, described once for every result file (training
summaries, benchmarks, reports): CPU model and flags, cores, threads, torch, load."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from stae.errors import StaeError


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


def native_bf16() -> bool:
    """Whether the CPU computes in bfloat16 in hardware (AVX512-BF16 or AMX). Without either,
    oneDNN emulates bfloat16 and autocast runs slower than float32: streaming under
    ``--bf16`` was 13x slower than float32 on an AVX2-only AMD EPYC (docs/performance.md)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(p) for p in probes):
        return any(p() for p in probes)
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))


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
        "native_bf16": native_bf16(),
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


# ----------------------------------------------------------------------------- budgets
def available_memory() -> int:
    """Bytes of memory available to a new allocation: ``MemAvailable`` of /proc/meminfo (Linux),
    else the physical memory; the cgroup limit when one is set and lower."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            return 1 << 62  # unknown: no limit of ours
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            avail = min(avail, int(limit))
    except OSError:
        pass
    return avail


def gb(nbytes: float) -> str:
    v = nbytes / 1e9
    return f"{v:,.0f} GB" if v >= 100 else f"{v:.3g} GB"


def require_memory(nbytes: float, what: str) -> None:
    """Refuse, before allocating, work that needs more memory than the machine has available:
    a :class:`StaeError` "``what`` needs N GB of memory; this machine has M GB available"."""
    avail = available_memory()
    if nbytes > avail:
        raise StaeError(f"{what} needs {gb(nbytes)} of memory; this machine has {gb(avail)} available")


def require_disk(directory: str | os.PathLike, nbytes: float, what: str) -> None:
    """Refuse to start writing ``nbytes`` into ``directory`` when its file system has less free space."""
    import shutil

    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # cannot tell: the write itself reports a full disk
    if nbytes > free:
        raise StaeError(f"{what} needs {gb(nbytes)} of disk space; {directory} has {gb(free)} free")


def activation_bytes(cfg: Any, batch: int, h: int, w: int, frames: int = 1) -> float:
    """A lower estimate of the float32 activations of ``frames`` time steps of a model with config
    ``cfg`` (a :class:`~stae.model.config.ModelConfig`) on ``batch`` frames of ``h`` x ``w``: the
    encoder and decoder maps at image resolution, the memory's gates and states and Theta's maps on
    the feature grid. Enough to refuse an impossible size before the allocator does."""
    image = batch * h * w * (cfg.in_channels + 3 * sum(c / 4 ** i for i, c in enumerate(cfg.encoder_channels)))
    grid = batch * (h / cfg.stride) * (w / cfg.stride)
    memory = 8 * sum(cfg.memory_channels) if cfg.memory == "conv" else 0
    feature = grid * (memory + 4 * cfg.flow_hidden + 4 + 2 * cfg.feature_channels)
    fc = batch * 8 * sum(cfg.fc_hidden) if cfg.memory == "fc" else 0
    return 4.0 * frames * (image + feature + fc)
