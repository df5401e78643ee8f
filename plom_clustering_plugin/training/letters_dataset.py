# SPDX-License-Identifier: AGPL-3.0-or-later
"""Pre-render training canvases from strokes (numpy only), in parallel, cached on disk.

Each letter gets ``variants`` answer boxes; every box is seeded by (seed, letter row,
variant), so the arrays are the same whatever the number of processes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .letters_boxes import TRAIN, Context, box_samples
from .letters_data import Letter
from .npz_cache import cached_arrays

_POOL: list[Letter] = []


def _init(pool: list[Letter]) -> None:
    global _POOL
    _POOL = pool


def _render(task: tuple[int, int, int, Context]) -> list[tuple[np.ndarray, int]]:
    row, variant, seed, context = task
    rng = np.random.default_rng([seed, row, variant])
    return box_samples(_POOL[row], _POOL, context, rng)


def render_set(
    letters: Sequence[Letter],
    variants: int,
    seed: int,
    context: Context = TRAIN,
    processes: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``variants`` boxes per letter into canvases and labels (11 = not a letter).

    Returns:
        ``uint8 (N, 64, 64)`` canvases and ``int64 (N,)`` labels.
    """
    tasks = [
        (row, v, seed, context) for v in range(variants) for row in range(len(letters))
    ]
    if processes > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(processes, initializer=_init, initargs=(list(letters),)) as pool:
            results = pool.map(_render, tasks, chunksize=256)
    else:
        _init(list(letters))
        results = [_render(t) for t in tasks]
    images = [img for samples in results for img, _ in samples]
    labels = [label for samples in results for _, label in samples]
    return np.stack(images), np.asarray(labels, np.int64)


def cached_set(
    path: Path,
    letters: Sequence[Letter],
    variants: int,
    seed: int,
    context: Context = TRAIN,
    processes: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render_set`, stored in ``path`` (npz) and reused when present."""

    def make() -> dict[str, np.ndarray]:
        images, labels = render_set(letters, variants, seed, context, processes)
        return {"images": images, "labels": labels}

    arrays = cached_arrays(path, make)
    return arrays["images"], arrays["labels"]


def images64_set(data: Path, keep: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """The pre-rendered ``images64.npz`` letters of the ``keep`` writers as canvases.

    For comparison only: clean, isolated letters with one pen width and no box, put
    through ``prepare`` and ``letter_canvas`` as at run time.
    """
    import gzip
    import json

    from ..ml.letters import LETTERS, letter_canvas
    from ..ml.preprocess import prepare
    from .letters_boxes import to_uint8

    with np.load(data / "images64.npz") as npz:
        images, labels = npz["images"], npz["labels"].astype(str)
    with gzip.open(data / "strokes.jsonl.gz", "rt", encoding="utf-8") as handle:
        writers = [json.loads(line)["writer"] for line in handle]
    rows = [i for i, w in enumerate(writers) if w in keep]
    canvases, classes = [], []
    for i in rows:
        crop = prepare(images[i])
        if not crop.is_blank:
            canvases.append(to_uint8(letter_canvas(crop.ink)))
            classes.append(LETTERS.index(labels[i]))
    return np.stack(canvases), np.asarray(classes, np.int64)
