# SPDX-License-Identifier: AGPL-3.0-or-later
"""The demo's "students": who writes which letter or expression, in whose hand.

Answers are skewed as in real questions (one common right answer, a few common wrong
ones, some blanks, a few one-offs) and each student has their own hand (a font plus a
random distortion), so that no two writings look alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .handwriting import PLOM_FONTS, render_text

#: Letters and how often students pick them; None is a blank box.
LETTER_WEIGHTS = {"A": 0.35, "C": 0.2, "B": 0.15, "d": 0.1, "E": 0.1, None: 0.1}
#: Expressions and how often students write them; "one-off" draws a unique answer.
EXPRESSION_WEIGHTS = {
    "2x+3": 0.4,
    "x=4": 0.2,
    "3(x-1)": 0.15,
    "7/2": 0.1,
    "one-off": 0.1,
    None: 0.05,
}


@dataclass(frozen=True)
class Written:
    """One student's answer: the true text (None = blank) and its image."""

    text: str | None
    png: bytes | None


def _pick(rng: random.Random, weights: dict) -> str | None:
    choices = list(weights)
    return rng.choices(choices, weights=[weights[c] for c in choices])[0]


def _one_off(rng: random.Random) -> str:
    a, b = rng.randint(2, 9), rng.randint(10, 99)
    return rng.choice([f"{a}x-{b}", f"x={b}", f"{b}/{a}", f"{a}y+{b}"])


def make_answers(num_papers: int, *, seed: int = 0) -> dict[int, dict[int, Written]]:
    """``{question: {paper: Written}}`` for question 1 (letters) and 2 (expressions)."""
    rng = random.Random(seed)
    answers: dict[int, dict[int, Written]] = {1: {}, 2: {}}
    for paper in range(1, num_papers + 1):
        hand = rng.choice(PLOM_FONTS)
        letter = _pick(rng, LETTER_WEIGHTS)
        answers[1][paper] = Written(
            letter,
            (
                render_text(letter, font=hand, seed=rng.randrange(1 << 30))
                if letter
                else None
            ),
        )
        expression = _pick(rng, EXPRESSION_WEIGHTS)
        if expression == "one-off":
            expression = _one_off(rng)
        answers[2][paper] = Written(
            expression,
            (
                render_text(expression, font=hand, size=56, seed=rng.randrange(1 << 30))
                if expression
                else None
            ),
        )
    return answers


def _ink_png(path) -> bytes:
    """A scan or drawing (dark ink on light paper) as ink on a transparent background."""
    import io

    from PIL import Image, ImageOps

    gray = ImageOps.grayscale(Image.open(path))
    alpha = ImageOps.invert(gray)
    ink = Image.new("RGBA", gray.size, (20, 20, 60, 0))
    ink.putalpha(alpha)
    bbox = alpha.point(lambda v: 255 if v > 60 else 0).getbbox()
    if bbox:
        ink = ink.crop(bbox)
    out = io.BytesIO()
    ink.save(out, format="PNG")
    return out.getvalue()


def answers_from_folder(
    folder, num_papers: int, *, seed: int = 0
) -> tuple[int, dict[int, Written]]:
    """Real answers from a folder: ``labels.csv`` + images, one per paper, at random.

    The column ``label`` means letters (question 1); ``latex`` means expressions
    (question 2).

    Returns:
        The question they belong to (1 for letters, 2 for expressions) and the answers.

    Raises:
        ValueError: no labels.csv, no usable column, or no images.
    """
    import csv
    from pathlib import Path

    folder = Path(folder)
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise ValueError(
            f"{labels} does not exist: --answers needs labels.csv + images"
        )
    with labels.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    column = "label" if rows and "label" in rows[0] else "latex"
    if not rows or column not in rows[0] or "image" not in rows[0]:
        raise ValueError(f"{labels} needs the columns image and label (or latex)")
    rng = random.Random(seed)
    picked = rng.sample(rows, num_papers) if len(rows) >= num_papers else rows
    answers = {
        paper: Written(row[column], _ink_png(folder / row["image"]))
        for paper, row in enumerate(picked, start=1)
    }
    return (1 if column == "label" else 2), answers
