# SPDX-License-Identifier: AGPL-3.0-or-later
"""Validation and calibration of HME embeddings (numpy only, no torch).

Embeddings are scored the way the project's evaluation harness scores methods (its
protocols and metrics are reused): purity/NMI/ARI at the true k on the ``top50`` and
``all`` protocols, and automatic k on simulated ``exam`` questions.  Calibration picks
the clusterer's "surely same" / "surely different" distances on the TRAINING split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..evaluation.baselines import kmeans_labels
from ..evaluation.metrics import score_clustering
from ..evaluation.protocols import all_classes, exam_questions, top_classes
from ..ml.clustering import cluster_embeddings

#: Candidate "surely the same answer" distances.
SAME_GRID = (0.01, 0.02, 0.04, 0.06, 0.1)
#: Candidate "surely different" distances.
DIFFERENT_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
#: Simulated exam questions per score.
EXAM_COUNT = 40
#: The review bin holds at most this share of the answers...
REVIEW_SHARE = 0.03
#: ...and only as many of the least confident as are misplaced this often (the letter
#: model's unsure bin: 50 %).
REVIEW_PRECISION = 0.5


def symbol_map(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro mean average precision of symbol presence over classes that occur."""
    aps = []
    for c in range(targets.shape[1]):
        positive = targets[:, c] > 0
        if not positive.any() or positive.all():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = positive[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float(precision[hits].mean()))
    return float(np.mean(aps)) if aps else float("nan")


def true_k(vectors: np.ndarray, latex: Sequence[str], seed: int = 0) -> dict:
    """Purity, NMI and ARI of KMeans at the true k on ``top50`` and ``all``."""
    out = {}
    for question in (top_classes(latex, seed=seed), all_classes(latex, seed=seed)):
        rows = question.indices
        labels = kmeans_labels(vectors[rows], question.k_true, seed=seed, attempts=3)
        scores = score_clustering(question.truth, labels)
        out[question.name] = {
            key: round(scores[key], 4) for key in ("purity", "nmi", "ari")
        } | {"images": len(rows), "k": question.k_true}
    return out


def _exam_clusterings(vectors, latex, same, different, seed, count):
    """Each simulated exam question with its automatic-k clustering."""
    for question in exam_questions(latex, "hme", count=count, seed=seed):
        yield question, cluster_embeddings(
            vectors[question.indices],
            same_answer_distance=same,
            different_answer_distance=different,
        )


def exam(
    vectors: np.ndarray,
    latex: Sequence[str],
    same: float,
    different: float,
    seed: int = 0,
    count: int = EXAM_COUNT,
) -> dict:
    """Mean ARI, purity and marking cost (and its ratio to ideal) with automatic k."""
    rows = []
    for question, found in _exam_clusterings(
        vectors, latex, same, different, seed, count
    ):
        scores = score_clustering(question.truth, found.labels)
        rows.append(
            (
                scores["ari"],
                scores["purity"],
                scores["marking_cost"],
                scores["marking_cost"] / scores["marking_cost_ideal"],
                scores["k_found"] / scores["k_true"],
            )
        )
    mean = np.mean(rows, axis=0)
    names = ("ari", "purity", "marking_cost", "cost_vs_ideal", "k_found_vs_true")
    return {name: round(float(v), 4) for name, v in zip(names, mean, strict=True)}


def calibrate(
    vectors: np.ndarray, latex: Sequence[str], seed: int = 0, count: int = 20
) -> dict:
    """The (same, different) distances with the best exam score on these answers.

    Score: mean ARI minus the excess marking cost over ideal, so that neither merging
    different answers nor splitting equal ones is free.  When several settings tie for
    the best score (a net that has learnt its training images scores perfectly over a
    whole range), the middle of that plateau is taken: the setting farthest from the
    edges where it starts to fail, rather than the first one tried.
    """
    results = []
    for same in SAME_GRID:
        for different in DIFFERENT_GRID:
            if different <= same:
                continue
            scores = exam(vectors, latex, same, different, seed=seed, count=count)
            value = scores["ari"] - (scores["cost_vs_ideal"] - 1)
            results.append((value, same, different, scores))
    if not results:
        raise ValueError("no (same, different) setting to try")
    return _plateau_middle(results)


#: Scores this close to the best are ties (the exam means are over a few questions).
TIE = 1e-3


def _plateau_middle(results: list[tuple[float, float, float, dict]]) -> dict:
    """The middle setting of those tied for the best score, by (different, same)."""
    best = max(value for value, *_ in results)
    tied = sorted(
        (r for r in results if r[0] >= best - TIE), key=lambda r: (r[2], r[1])
    )
    _, same, different, scores = tied[(len(tied) - 1) // 2]
    return {
        "same_answer_distance": same,
        "different_answer_distance": different,
        "train_exam": scores,
        "tied_settings": len(tied),
    }


def review_threshold(
    vectors: np.ndarray,
    latex: Sequence[str],
    same: float,
    different: float,
    seed: int = 0,
    count: int = 20,
    share: float = REVIEW_SHARE,
    precision: float = REVIEW_PRECISION,
) -> float:
    """Member confidence under which an answer goes to the review bin.

    Every answer in the bin is one more look for the marker, worth it only when the
    answer is likely misplaced: the threshold is the highest one whose bin, on these
    simulated exam questions, holds misplaced answers at least ``precision`` of the
    time and no more than ``share`` of the answers.  (A fixed share of 3 % binned
    answers of which 6 % were misplaced: exam ARI 0.986 -> 0.894 on validation.)
    """
    confidence, misplaced = [], []
    for question, found in _exam_clusterings(
        vectors, latex, same, different, seed, count
    ):
        truth = np.asarray(question.truth)
        sizes = np.bincount(found.labels)
        for label in np.flatnonzero(sizes > 1):  # singletons go to "other"
            members = np.flatnonzero(found.labels == label)
            values, counts = np.unique(truth[members], return_counts=True)
            confidence.extend(found.confidence[members])
            misplaced.extend(truth[members] != values[counts.argmax()])
    if not confidence:
        return 0.0
    order = np.argsort(confidence, kind="stable")
    ranked = np.asarray(confidence)[order]
    wrong = np.asarray(misplaced, float)[order]
    binned = np.arange(1, len(ranked) + 1)
    ok = (np.cumsum(wrong) / binned >= precision) & (binned <= share * len(ranked))
    if not ok.any():
        return 0.0
    last = int(np.flatnonzero(ok).max())
    above = ranked[last + 1] if last + 1 < len(ranked) else ranked[last] + 1e-3
    return round(float((ranked[last] + above) / 2), 4)
