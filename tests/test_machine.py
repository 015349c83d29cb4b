"""stae.machine: what the CPU can do, as the result files and `stae predict --bf16` report it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from stae import machine

linux_x86 = pytest.mark.skipif(not (sys.platform == "linux" and Path("/proc/cpuinfo").exists()
                                    and "flags" in Path("/proc/cpuinfo").read_text()),
                               reason="reads the CPU flags of /proc/cpuinfo")


def _flags_say_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & set(machine._cpuinfo("flags").split()))


@linux_x86
def test_native_bf16_agrees_with_the_cpu_flags():
    assert machine.native_bf16() is _flags_say_bf16()
    assert machine.describe()["native_bf16"] is machine.native_bf16()


@linux_x86
def test_native_bf16_reads_the_flags_when_torch_cannot_tell(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert machine.native_bf16() is _flags_say_bf16()
