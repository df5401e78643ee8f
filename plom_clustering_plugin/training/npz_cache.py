# SPDX-License-Identifier: AGPL-3.0-or-later
"""Rendered training arrays kept on disk: made once, reloaded by later runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def cached_arrays(
    path: Path | None, make: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``make()``'s named arrays, stored as ``path`` (``.npz``) and reused when present.

    The file is written under a temporary name and renamed, so a killed run never
    leaves half a cache behind.  ``path`` None: no cache.
    """
    if path is not None and path.exists():
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    arrays = make()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp.npz")
        np.savez(temp, **arrays)
        temp.replace(path)
    return arrays
