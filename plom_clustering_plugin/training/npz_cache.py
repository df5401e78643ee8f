# SPDX-License-Identifier: AGPL-3.0-or-later
"""Rendered training arrays kept on disk: made once, reloaded by later runs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cached_arrays(
    path: Path | None, make: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``make()``'s named arrays, stored as ``path`` (``.npz``) and reused when present.

    The file is written under a temporary name of its own and renamed, so a killed
    run never leaves half a cache behind and two runs making the same cache at once
    do not write into one file.  ``path`` None: no cache.
    """
    if path is not None and path.exists():
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    arrays = make()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            prefix=path.stem + ".", suffix=".tmp.npz", dir=path.parent
        )
        try:
            with os.fdopen(handle, "wb") as temp:
                np.savez(temp, **arrays)
            os.replace(name, path)
        except BaseException:
            os.unlink(name)
            raise
    return arrays
