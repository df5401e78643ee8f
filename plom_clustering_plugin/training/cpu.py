# SPDX-License-Identifier: AGPL-3.0-or-later
"""What the training CPU can do fast.

bf16 autocast is 1.6-2.7x faster than float32 on CPUs with native bf16 instructions
(AVX512-BF16 or AMX) and about 2x *slower* on CPUs without them, where torch emulates
it: measured 75 vs 163 img/s on the HME net on an AVX-512 Xeon lacking both.
"""

from __future__ import annotations

from pathlib import Path

from ..evaluation.machine import cpu_flags

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def bf16_is_fast(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU advertises native bf16 arithmetic (Linux; else False)."""
    return not cpu_flags(cpuinfo).isdisjoint(_BF16_FLAGS)


def use_bf16(choice: str) -> bool:
    """Resolve a ``--bf16 auto|on|off`` option."""
    if choice == "auto":
        return bf16_is_fast()
    return choice == "on"
