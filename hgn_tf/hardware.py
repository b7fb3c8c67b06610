"""What the machine offers that changes how fast a config trains.

    bfloat16_matrix_units()   True where the CPU multiplies bfloat16 matrices in hardware (AMX)
"""

from __future__ import annotations

import pathlib

__all__ = ["bfloat16_matrix_units", "cpu_flags"]

CPUINFO = pathlib.Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (or the given text); empty where there is none
    (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def bfloat16_matrix_units(cpuinfo: str | None = None) -> bool:
    """True on CPUs with AMX-BF16 tiles (Intel Xeon from Sapphire Rapids on), where
    `ModelConfig.precision = "mixed_bfloat16"` makes a training step 1.7-1.9 times faster
    (bench/README.md). AVX512-BF16 without AMX is not counted: not measured here."""
    return "amx_bf16" in cpu_flags(cpuinfo)
