# SPDX-License-Identifier: AGPL-3.0-or-later
"""The machine a benchmark ran on, since its figures depend on it.

The shipped HME graphs run 8-bit integer convolutions, which are fast where the CPU
has VNNI instructions and barely faster than float32 where it has only AVX2: the same
v54 file embeds 361 crops per second on an AVX-512 AMD EPYC (session 25) and about
110 on an AVX2-only one (session 26).  A speed figure without the CPU's features
cannot be compared with another.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: The instruction sets that move onnxruntime's and torch's speed, in the order printed.
CPU_FEATURES = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
)


def _cpuinfo_fields(cpuinfo: str | Path) -> tuple[str, set[str]]:
    """The first ``model name`` and every ``flags`` word of a ``/proc/cpuinfo``."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags":
            flags.update(value.split())
    return model, flags


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    return _cpuinfo_fields(cpuinfo)[1]


def describe_machine(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """CPU model, cores this process may use, the features that matter, versions."""
    import onnxruntime

    model, flags = _cpuinfo_fields(cpuinfo)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": cores,
        "features": [name for name in CPU_FEATURES if name in flags],
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def format_machine(machine: dict) -> str:
    """One line: ``AMD EPYC, 2 cores, avx2 (not avx512f, ...); onnxruntime 1.x, ...``."""
    have = machine["features"]
    lacking = [name for name in CPU_FEATURES if name not in have]
    features = ", ".join(have) or "none of " + ", ".join(CPU_FEATURES)
    if have and lacking:
        features += " (not " + ", ".join(lacking) + ")"
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {features};"
        f" onnxruntime {machine['onnxruntime']}, Python {machine['python']}"
    )
