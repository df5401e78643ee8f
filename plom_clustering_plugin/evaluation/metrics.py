# SPDX-License-Identifier: AGPL-3.0-or-later
"""Scores for one clustering of one question against the true answers.

Both inputs are flat label arrays, one entry per answer: ``truth`` names the true answer
class, ``predicted`` the cluster.  Any hashable values work; singletons (the "other"
group, the review bin) must already carry a label of their own, see
:func:`plom_clustering_plugin.evaluation.methods.labels_from_pipeline`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

#: The metric names :func:`score_clustering` returns, in table order.
METRIC_NAMES = (
    "purity",
    "inverse_purity",
    "nmi",
    "ari",
    "k_found",
    "k_true",
    "marking_cost",
    "marking_cost_ideal",
)


def _codes(labels: Sequence) -> np.ndarray:
    """Map arbitrary hashable labels to 0..m-1 integer codes (first appearance order)."""
    mapping: dict = {}
    return np.array([mapping.setdefault(label, len(mapping)) for label in labels], int)


def contingency(truth: Sequence, predicted: Sequence) -> np.ndarray:
    """Count answers per (cluster, true class): rows are clusters, columns classes."""
    if len(truth) != len(predicted):
        raise ValueError(
            f"truth has {len(truth)} labels but predicted has {len(predicted)}"
        )
    true_codes = _codes(truth)
    pred_codes = _codes(predicted)
    table = np.zeros(
        (pred_codes.max(initial=-1) + 1, true_codes.max(initial=-1) + 1), int
    )
    np.add.at(table, (pred_codes, true_codes), 1)
    return table


def purity(truth: Sequence, predicted: Sequence) -> float:
    """Share of answers that belong to their cluster's majority class."""
    table = contingency(truth, predicted)
    return float(table.max(axis=1).sum() / table.sum()) if table.size else math.nan


def inverse_purity(truth: Sequence, predicted: Sequence) -> float:
    """Share of answers that sit in the cluster holding most of their class."""
    table = contingency(truth, predicted)
    return float(table.max(axis=0).sum() / table.sum()) if table.size else math.nan


def nmi(truth: Sequence, predicted: Sequence) -> float:
    """Normalised mutual information, arithmetic mean of the entropies (sklearn)."""
    if len(truth) == 0:
        return math.nan
    return float(
        normalized_mutual_info_score(
            _codes(truth), _codes(predicted), average_method="arithmetic"
        )
    )


def ari(truth: Sequence, predicted: Sequence) -> float:
    """Adjusted Rand index (sklearn): 0 is chance, 1 is identical."""
    if len(truth) == 0:
        return math.nan
    return float(adjusted_rand_score(_codes(truth), _codes(predicted)))


def marking_cost(truth: Sequence, predicted: Sequence) -> float:
    """One look per cluster plus one move per misplaced answer, per answer.

    ``(k_found + answers outside their cluster's majority) / N``; all singletons give
    1.0 (mark every answer), a perfect clustering gives ``k_true / N``.
    """
    table = contingency(truth, predicted)
    if not table.size:
        return math.nan
    total = table.sum()
    misplaced = total - table.max(axis=1).sum()
    return float((table.shape[0] + misplaced) / total)


def ideal_marking_cost(truth: Sequence) -> float:
    """The marking cost of a perfect clustering: distinct answers / N."""
    return len(set(truth)) / len(truth) if len(truth) else math.nan


def score_clustering(truth: Sequence, predicted: Sequence) -> dict[str, float]:
    """Every metric in :data:`METRIC_NAMES` for one clustering."""
    return {
        "purity": purity(truth, predicted),
        "inverse_purity": inverse_purity(truth, predicted),
        "nmi": nmi(truth, predicted),
        "ari": ari(truth, predicted),
        "k_found": float(len(set(predicted))),
        "k_true": float(len(set(truth))),
        "marking_cost": marking_cost(truth, predicted),
        "marking_cost_ideal": ideal_marking_cost(truth),
    }
