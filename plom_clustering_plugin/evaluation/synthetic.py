# SPDX-License-Identifier: AGPL-3.0-or-later
"""Data the project makes itself: drawn toy answers and clustered embeddings.

Used by the tests and the benchmark, which may not touch real (licensed) handwriting.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .datasets import TRUTH_COLUMN

#: Toy answer classes, each a list of polylines in unit coordinates.
SHAPES: dict[str, list[list[tuple[float, float]]]] = {
    "cross": [[(0, 0), (1, 1)], [(0, 1), (1, 0)]],
    "square": [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],
    "triangle": [[(0.5, 0), (1, 1), (0, 1), (0.5, 0)]],
    "zigzag": [[(0, 0.2), (0.25, 0.8), (0.5, 0.2), (0.75, 0.8), (1, 0.2)]],
    "plus": [[(0.5, 0), (0.5, 1)], [(0, 0.5), (1, 0.5)]],
    "bars": [[(0.1, 0), (0.1, 1)], [(0.5, 0), (0.5, 1)], [(0.9, 0), (0.9, 1)]],
}


def draw_answer(
    strokes: list[list[tuple[float, float]]],
    rng: np.random.Generator,
    height: int = 64,
    width: int = 160,
) -> np.ndarray:
    """Draw polylines with jittered size, position and pen: grey ``uint8``, ink black."""
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    size = rng.uniform(0.55, 0.85) * min(height, width)
    left = rng.uniform(0.05, 0.95) * (width - size)
    top = rng.uniform(0.05, 0.95) * (height - size)
    pen = int(rng.integers(2, 5))
    for line in strokes:
        points = [
            (
                left + (x + rng.normal(0, 0.02)) * size,
                top + (y + rng.normal(0, 0.02)) * size,
            )
            for x, y in line
        ]
        draw.line(points, fill=0, width=pen, joint="curve")
    return np.asarray(img, dtype=np.uint8)


def scribble(rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """A random polyline: a one-off answer."""
    points = rng.uniform(0, 1, size=(int(rng.integers(4, 8)), 2))
    return [[(float(x), float(y)) for x, y in points]]


def write_toy_dataset(
    folder: str | Path,
    kind: str,
    *,
    classes: int = 4,
    per_class: int = 6,
    one_offs: int = 3,
    seed: int = 0,
) -> Path:
    """Write ``labels.csv`` and PNGs of drawn shapes, laid out like crohme-dev.

    Args:
        folder: where to write (created if needed).
        kind: ``hme`` (truth column ``latex``) or ``mcq`` (``label``).
        classes: how many shape classes, at most ``len(SHAPES)``.
        per_class: images per class.
        one_offs: extra single-image classes (random scribbles).
        seed: drawing seed.

    Returns:
        The folder.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str]] = []
    for name in list(SHAPES)[:classes]:
        for i in range(per_class):
            rows.append((f"images/{name}-{i}.png", name))
            image = draw_answer(SHAPES[name], rng)
            Image.fromarray(image).save(folder / rows[-1][0])
    for i in range(one_offs):
        rows.append((f"images/oneoff-{i}.png", f"oneoff{i}"))
        Image.fromarray(draw_answer(scribble(rng), rng)).save(folder / rows[-1][0])
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        table = csv.writer(handle)
        table.writerow(["image", TRUTH_COLUMN[kind], "note"])  # extra column: ignored
        table.writerows((image, truth, "toy") for image, truth in rows)
    return folder


def clustered_embeddings(
    n: int, dim: int, rng: np.random.Generator, *, groups: int | None = None
) -> np.ndarray:
    """L2-normalised vectors in skewed groups plus 10 % one-offs, like a real question."""
    groups = groups or max(2, min(30, n // 20))
    centres = rng.normal(size=(groups, dim))
    sizes = rng.dirichlet(np.full(groups, 0.7))
    members = rng.choice(groups, size=n - n // 10, p=sizes)
    vectors = centres[members] + rng.normal(0, 0.35, size=(len(members), dim))
    vectors = np.concatenate([vectors, rng.normal(size=(n // 10, dim))])
    vectors = vectors[rng.permutation(n)]
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
