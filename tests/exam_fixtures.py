# SPDX-License-Identifier: AGPL-3.0-or-later
"""Scanned-exam fixtures: the demo's exam builder with answers the tests choose."""

from __future__ import annotations

from plom_clustering_plugin.demo.exam import ScannedExam, build_scanned_exam
from plom_clustering_plugin.demo.handwriting import PLOM_FONTS, render_text

#: Three clearly different answers (same writing for everyone who wrote it).
THREE_ANSWERS = ("x+1", "2y", "B7")


def three_answer_exam(
    num_papers: int = 20, *, blanks: tuple[int, ...] = (), **kwargs
) -> tuple[ScannedExam, dict[int, str | None]]:
    """An exam whose question 1 box holds one of three drawings (or nothing).

    Returns:
        The exam, and what each paper wrote (None for blank).
    """
    images = {
        text: render_text(text, font=PLOM_FONTS[i], vary=False)
        for i, text in enumerate(THREE_ANSWERS)
    }
    truth: dict[int, str | None] = {}
    for paper in range(1, num_papers + 1):
        truth[paper] = None if paper in blanks else THREE_ANSWERS[paper % 3]
    answers = {1: {p: images[t] for p, t in truth.items() if t is not None}}
    return build_scanned_exam(answers, num_papers=num_papers, **kwargs), truth


def partition(groups) -> set[frozenset]:
    """A set of frozensets, to compare groupings regardless of order or numbering."""
    return {frozenset(g) for g in groups if g}
