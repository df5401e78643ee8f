# SPDX-License-Identifier: AGPL-3.0-or-later
"""Paired differences between two methods evaluated on the same questions.

Two models a few tenths of a point apart on an exam protocol's mean are often within
the seed-to-seed spread, yet they answered the *same* questions (the harness draws
questions from the seed alone).  The difference question by question cancels what
the questions share, so its mean and standard error say whether the gap is real.

Each side is one method's results in a harness JSON file (``evaluate --json``, one
seed or several); the two sides may come from one file (two methods) or from two
(the same command with another ``--method``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .report import align_columns

#: The metrics compared, in table order.
PAIRED_METRICS = ("purity", "ari", "marking_cost", "k_found")


@dataclass(frozen=True)
class Side:
    """One method's per-question scores, keyed by (protocol, mode, seed, question)."""

    method: str
    scores: dict[tuple[str, str, int, str], dict[str, float]]


@dataclass(frozen=True)
class PairedRow:
    """One metric of one protocol and mode: both means and the paired difference."""

    protocol: str
    mode: str
    metric: str
    pairs: int
    base: float
    other: float
    difference: float
    standard_error: float


def load_side(path: str | Path, method: str | None = None) -> Side:
    """One method's scores from a harness JSON file.

    Args:
        path: written by ``evaluate --json``.
        method: the method's name as the file spells it; needed only when the file
            holds more than one.

    Raises:
        ValueError: unreadable file, no such method, or several and none chosen.
    """
    try:
        run = json.loads(Path(path).read_text(encoding="utf-8"))
        runs = run.get("runs", [run])
        methods = list(dict.fromkeys(r["method"] for r in runs[0].get("results", [])))
    except (OSError, json.JSONDecodeError, AttributeError, KeyError, TypeError) as err:
        # Unreadable, not JSON, or JSON of another shape (a list, a result without
        # its method): all one message.
        raise ValueError(f"{path}: not a harness JSON file ({err!r})") from err
    if not methods:
        raise ValueError(f"{path}: holds no results")
    if method is None:
        if len(methods) > 1:
            raise ValueError(f"{path} holds {', '.join(methods)}: choose one")
        method = methods[0]
    elif method not in methods:
        raise ValueError(
            f"{path} has no method {method!r}; it has {', '.join(methods)}"
        )
    try:
        return Side(method, _scores(runs, method))
    except (KeyError, TypeError, ValueError) as err:
        # A result without its questions (evaluate --json always writes them).
        raise ValueError(
            f"{path}: not a harness JSON file with per-question scores ({err!r})"
        ) from err


def _scores(runs: list[dict], method: str) -> dict:
    """``method``'s per-question scores keyed by protocol, mode, seed and question."""
    scores = {}
    for seeded in runs:
        for result in seeded["results"]:
            if result["method"] != method:
                continue
            for question in result["per_question"]:
                key = (
                    result["protocol"],
                    result["mode"],
                    int(seeded["seed"]),
                    question["question"],
                )
                scores[key] = question
    return scores


def compare(base: Side, other: Side) -> list[PairedRow]:
    """Every metric's paired difference (other minus base) per protocol and mode.

    Only questions both sides scored are paired (a question one method failed on has
    no pair).  The standard error is the pairs' sample deviation over the root of
    their count.  It is NaN for a single pair, and where every pair differs by the
    same amount: ``all`` and ``top50`` draw the same question for every seed, so a
    deterministic mode (automatic k) repeats one result, which a spread of 0 would
    present as certainty.

    Raises:
        ValueError: the two sides share no question (other data, seeds or protocols).
    """
    shared = sorted(base.scores.keys() & other.scores.keys())
    if not shared:
        raise ValueError(
            "the two sides share no question: run both with the same --data,"
            " --protocol, --seed and --seeds"
        )
    groups: dict[tuple[str, str], list[tuple[str, str, int, str]]] = {}
    for key in shared:
        groups.setdefault(key[:2], []).append(key)
    rows = []
    for (protocol, mode), keys in groups.items():
        for metric in PAIRED_METRICS:
            a = _values(base, keys, metric)
            b = _values(other, keys, metric)
            kept = ~(np.isnan(a) | np.isnan(b))
            a, b = a[kept], b[kept]
            if not len(a):
                continue
            diff = b - a
            se = math.nan  # one pair, or repeats of one result: no spread to read
            if len(diff) > 1 and not np.all(diff == diff[0]):
                se = float(np.std(diff, ddof=1) / math.sqrt(len(diff)))
            rows.append(
                PairedRow(
                    protocol,
                    mode,
                    metric,
                    len(diff),
                    float(a.mean()),
                    float(b.mean()),
                    float(diff.mean()),
                    se,
                )
            )
    return rows


def _values(side: Side, keys: list, metric: str) -> np.ndarray:
    values = [side.scores[key].get(metric) for key in keys]
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def format_rows(base: Side, other: Side, rows: list[PairedRow]) -> str:
    """A plain-text table: both means, the difference and its standard error."""
    header = ["protocol", "mode", "metric", "pairs", "base", "other", "diff", "SE"]
    lines = [f"base:  {base.method}", f"other: {other.method}", ""]
    table = [header] + [
        [
            row.protocol,
            row.mode,
            row.metric,
            str(row.pairs),
            f"{row.base:.4f}",
            f"{row.other:.4f}",
            f"{row.difference:+.4f}",
            "-" if math.isnan(row.standard_error) else f"{row.standard_error:.4f}",
        ]
        for row in rows
    ]
    lines += [line.rstrip() for line in align_columns(table)]
    return "\n".join(lines)
