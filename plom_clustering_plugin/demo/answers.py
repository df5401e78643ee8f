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


def make_answers(
    num_papers: int, *, seed: int = 0
) -> dict[int, dict[int, Written]]:
    """``{question: {paper: Written}}`` for question 1 (letters) and 2 (expressions)."""
    rng = random.Random(seed)
    answers: dict[int, dict[int, Written]] = {1: {}, 2: {}}
    for paper in range(1, num_papers + 1):
        hand = rng.choice(PLOM_FONTS)
        letter = _pick(rng, LETTER_WEIGHTS)
        answers[1][paper] = Written(
            letter,
            render_text(letter, font=hand, seed=rng.randrange(1 << 30)) if letter else None,
        )
        expression = _pick(rng, EXPRESSION_WEIGHTS)
        if expression == "one-off":
            expression = _one_off(rng)
        answers[2][paper] = Written(
            expression,
            render_text(expression, font=hand, size=56, seed=rng.randrange(1 << 30))
            if expression
            else None,
        )
    return answers
