# SPDX-License-Identifier: AGPL-3.0-or-later
"""One evaluation repeated over several seeds: the mean and spread of every summary.

One seed draws one set of questions, one scan simulation and one KMeans start, and
two models 0.01 apart at the true k can swap places from one seed to the next (v5:
``top50`` purity 0.928-0.934 over seeds 0-4).  Comparing models on the mean of a few
seeds, with the spread beside it, shows which differences are real.
"""

from __future__ import annotations

import math

import numpy as np


def combine(runs: list[dict]) -> dict:
    """Runs of one configuration under different seeds, as one run.

    Each result's ``summary`` becomes the mean over the seeds (NaN-skipping) and
    ``spread`` the sample standard deviation (0 for one seed); errors keep their seed.
    The question sizes shown are the first seed's; every seed's run is kept in ``runs``.

    Raises:
        ValueError: no runs, or runs of different protocols / methods.
    """
    if not runs:
        raise ValueError("no runs to combine")
    layout = [_key(r) for r in runs[0]["results"]]
    for run in runs[1:]:
        if [_key(r) for r in run["results"]] != layout:
            raise ValueError("runs differ in protocols, modes or methods")
    results = []
    for i, first in enumerate(runs[0]["results"]):
        summaries = [run["results"][i]["summary"] for run in runs]
        results.append(
            {
                "protocol": first["protocol"],
                "mode": first["mode"],
                "method": first["method"],
                "summary": {k: _mean([s[k] for s in summaries]) for k in summaries[0]},
                "spread": {k: _sd([s[k] for s in summaries]) for k in summaries[0]},
                "errors": [
                    f"seed {run['seed']}: {error}"
                    for run in runs
                    for error in run["results"][i]["errors"]
                ],
            }
        )
    return {
        **runs[0],
        "seed": [run["seed"] for run in runs],
        "results": results,
        "runs": runs,
    }


def _key(result: dict) -> tuple[str, str, str]:
    return result["protocol"], result["mode"], result["method"]


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def _mean(values: list[float]) -> float:
    kept = _finite(values)
    return float(np.mean(kept)) if kept else math.nan


def _sd(values: list[float]) -> float:
    kept = _finite(values)
    if not kept:
        return math.nan
    return float(np.std(kept, ddof=1)) if len(kept) > 1 else 0.0
