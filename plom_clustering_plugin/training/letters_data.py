# SPDX-License-Identifier: AGPL-3.0-or-later
"""Read the letters pool (``strokes.jsonl.gz``), split it by writer, render strokes.

Rendering draws the pen-tablet strokes as ink at a chosen size and pen width, with a
small random affine and point jitter, at twice the resolution then halved (anti-aliased,
half-pixel pen widths).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..ml.letters import LETTERS

#: Fraction of writers held out for validation, and the seed that picks them; the same
#: rule as ``evaluation.letters_to_dir --split dev`` so both see the same writers.
DEV_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class Letter:
    """One handwritten letter: class index, writer, and strokes as float arrays."""

    label: int
    char: str
    writer: str
    strokes: tuple[np.ndarray, ...]


def read_letters(path: Path, limit: int | None = None) -> list[Letter]:
    """Read ``strokes.jsonl.gz`` (rows keep the file's order; ``limit`` for tests)."""
    index = {name: i for i, name in enumerate(LETTERS)}
    letters = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            strokes = tuple(
                np.asarray(s, np.float32).reshape(-1, 2)
                for s in record["strokes"]
                if len(s)
            )
            if not strokes:
                continue
            letters.append(
                Letter(
                    index[record["label"]],
                    str(record.get("char", record["label"])),
                    str(record["writer"]),
                    strokes,
                )
            )
            if limit is not None and len(letters) >= limit:
                break
    return letters


def dev_writers(writers: Sequence[str], fraction: float = DEV_FRACTION) -> set[str]:
    """The held-out writers: a seeded ``fraction`` of the sorted writer names."""
    names = sorted(set(writers))
    shuffled = [
        names[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(names))
    ]
    return set(shuffled[: max(1, round(fraction * len(names)))])


def split_by_writer(
    letters: Sequence[Letter], fraction: float = DEV_FRACTION
) -> tuple[list[Letter], list[Letter]]:
    """Training and validation letters, no writer in both."""
    dev = dev_writers([x.writer for x in letters], fraction)
    train = [x for x in letters if x.writer not in dev]
    val = [x for x in letters if x.writer in dev]
    return train, val


def render_strokes(
    strokes: Sequence[np.ndarray],
    size: float,
    pen: float,
    rng: np.random.Generator,
    *,
    distort: bool = True,
) -> np.ndarray:
    """Draw strokes as a float ink map (1 = ink) whose longer side is about ``size`` px.

    Args:
        strokes: point arrays in tablet units, y growing downwards.
        size: target length of the letter's longer side, in output pixels.
        pen: pen width in output pixels.
        rng: random source for the affine and jitter.
        distort: apply rotation, shear, aspect change and point jitter.
    """
    points = np.concatenate(strokes)
    low = points.min(axis=0)
    extent = float((points.max(axis=0) - low).max()) or 1.0
    matrix = np.eye(2)
    if distort:
        angle = np.radians(rng.uniform(-8, 8))
        shear = rng.uniform(-0.2, 0.2)
        aspect = np.exp(rng.uniform(-0.12, 0.12))
        rotation = np.array(
            [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        )
        matrix = rotation @ np.array([[aspect, shear], [0.0, 1.0 / aspect]])
    scale = 2.0 * size / extent  # drawn at twice the size, then halved
    moved = [((s - low) * scale) @ matrix.T for s in strokes]
    if distort:
        sigma = rng.uniform(0.0, 0.8)
        moved = [m + rng.normal(0.0, sigma, m.shape) for m in moved]
    allpts = np.concatenate(moved)
    origin = allpts.min(axis=0) - 2 * pen - 2
    span = allpts.max(axis=0) - origin + 2 * pen + 2
    width, height = int(np.ceil(span[0])) + 1, int(np.ceil(span[1])) + 1
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    thick = max(1, round(2 * pen))
    radius = thick / 2.0
    for stroke in moved:
        xy = [(float(x), float(y)) for x, y in stroke - origin]
        if len(xy) > 1:
            draw.line(xy, fill=255, width=thick, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round pen tips
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    half = image.resize((max(1, width // 2), max(1, height // 2)), Image.BOX)
    return np.asarray(half, np.float32) / 255.0
