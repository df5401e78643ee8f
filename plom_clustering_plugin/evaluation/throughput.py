# SPDX-License-Identifier: AGPL-3.0-or-later
"""Crops per second of preprocessing and of each registered embedder.

The crops are drawn toy answers made to look scanned (see :mod:`.synthetic` and
:mod:`.scanify`), at the box size of each kind of answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ..ml.preprocess import PreparedCrop, prepare
from .methods import EMBEDDERS, embedder_factory
from .scanify import LAYOUTS, blank_reference, scanify
from .synthetic import SHAPES, draw_answer

#: Crops per batch in the batched embedding run (the pipeline's default).
BATCH = 64


def scanned_crops(kind: str, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` scanned-looking crops of toy answers for one kind of answer."""
    rng = np.random.default_rng(seed)
    shapes = list(SHAPES.values())
    layout = LAYOUTS[kind]
    return [
        scanify(draw_answer(shapes[i % len(shapes)], rng), layout, rng)
        for i in range(count)
    ]


def _rate(work: Callable[[], object], items: int) -> float:
    start = time.perf_counter()
    work()
    return items / max(time.perf_counter() - start, 1e-9)


def preprocessing_rates(kind: str, crops: Sequence[np.ndarray]) -> list[dict]:
    """``ml.preprocess.prepare`` with and without the reference crop, crops/s."""
    layout = LAYOUTS[kind]
    reference = blank_reference(layout)
    size = f"{layout.height}x{layout.width} crop"
    with_reference = _rate(lambda: [prepare(c, reference) for c in crops], len(crops))
    without = _rate(lambda: [prepare(c) for c in crops], len(crops))
    return [
        {
            "stage": "preprocess",
            "kind": kind,
            "setting": f"{size} + reference",
            "crops_per_second": with_reference,
        },
        {
            "stage": "preprocess",
            "kind": kind,
            "setting": f"{size}, no reference",
            "crops_per_second": without,
        },
    ]


def embedding_rates(
    name: str, kind: str, prepared: Sequence[PreparedCrop]
) -> list[dict]:
    """One embedder at batch 1 (as upstream Plom runs) and at :data:`BATCH`.

    ``name`` is any of :func:`.methods.embedder_factory`'s: registered, ``MODEL:VERSION``
    or ``PATH.entry.json``.
    """
    embedder = embedder_factory(name)(kind)
    embedder.embed(prepared[:2])  # warm-up: lazy sessions, caches
    one_by_one = _rate(lambda: [embedder.embed([c]) for c in prepared], len(prepared))
    batched = _rate(
        lambda: [
            embedder.embed(prepared[i : i + BATCH])
            for i in range(0, len(prepared), BATCH)
        ],
        len(prepared),
    )
    return [
        {
            "stage": f"embed {name}",
            "kind": kind,
            "setting": "batch 1",
            "crops_per_second": one_by_one,
        },
        {
            "stage": f"embed {name}",
            "kind": kind,
            "setting": f"batch {BATCH}",
            "crops_per_second": batched,
        },
    ]


def measure_throughput(
    count: int, seed: int = 0, extra: Sequence[str] = ()
) -> list[dict]:
    """Preprocessing and every registered embedder (plus ``extra``), for both kinds."""
    rows = []
    for kind in LAYOUTS:
        crops = scanned_crops(kind, count, seed)
        rows.extend(preprocessing_rates(kind, crops))
        reference = blank_reference(LAYOUTS[kind])
        prepared = [prepare(c, reference) for c in crops]
        for name in [*EMBEDDERS, *extra]:
            rows.extend(embedding_rates(name, kind, prepared))
    return rows
