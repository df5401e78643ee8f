# SPDX-License-Identifier: AGPL-3.0-or-later
"""Run every method on every question of every protocol and collect the scores.

``all`` and ``top50`` are run twice per method: with the true k given and with the
method choosing k; ``exam`` only with the method choosing k.  The result is a plain,
JSON-ready dictionary that :mod:`.report` prints.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .datasets import Dataset
from .machine import describe_machine
from .methods import Method, build_method
from .metrics import METRIC_NAMES, score_clustering
from .protocols import EXAM, MANY, Question, all_classes, exam_questions, top_classes
from .provenance import code_fingerprint
from .scanify import LAYOUTS, blank_reference, scanify

PROTOCOLS = ("all", "top50", "exam", "many")
#: What ``evaluate`` runs when no protocol is named (``every`` runs them all).
DEFAULT_PROTOCOLS = ("all", "top50", "exam")
#: Protocols of simulated exam questions (automatic k only), by name.
EXAM_SHAPES = {shape.name: shape for shape in (EXAM, MANY)}
TRUE_K = "true k"
AUTO_K = "auto k"
#: Per-question counts besides the metrics, as shares of the answers.
BIN_NAMES = ("review", "other", "blank")


@dataclass
class RunConfig:
    """What one evaluation run does.

    Attributes:
        protocols: names from :data:`PROTOCOLS`.
        methods: method specs for :func:`.methods.build_method`.
        scanify: make crops look scanned (and pass the blank reference crop).
        seed: drives question drawing, scanify, sampling and KMeans.
        limit_questions: keep only the first N exam questions.
        max_answers: stratified sample of ``all``/``top50`` down to this many answers.
    """

    protocols: list[str]
    methods: list[str]
    scanify: bool = False
    seed: int = 0
    limit_questions: int | None = None
    max_answers: int | None = None
    extra: dict = field(default_factory=dict)


class CropSource:
    """The crops a method sees: the images as they are, or scanified (cached)."""

    def __init__(self, dataset: Dataset, scanified: bool, seed: int) -> None:
        """Prepare the box layout and reference crop when scanifying."""
        self.dataset = dataset
        self.seed = seed
        self.layout = LAYOUTS[dataset.kind] if scanified else None
        self.reference = blank_reference(self.layout) if self.layout else None
        self._scans: dict[int, np.ndarray] = {}

    def crop(self, index: int) -> np.ndarray:
        """One answer's crop; a scanified crop depends only on the seed and the row."""
        if self.layout is None:
            return self.dataset.image(index)
        scan = self._scans.get(index)
        if scan is None:
            rng = np.random.default_rng([self.seed, 4, index])
            scan = scanify(self.dataset.image(index, cache=False), self.layout, rng)
            self._scans[index] = scan
        return scan

    def crops(self, indices: np.ndarray) -> list[np.ndarray]:
        """The crops of several rows, in order."""
        return [self.crop(int(i)) for i in indices]


def build_questions(
    dataset: Dataset, protocol: str, config: RunConfig
) -> list[Question]:
    """The questions of one protocol."""
    if protocol == "all":
        return [
            all_classes(
                dataset.answers, seed=config.seed, max_answers=config.max_answers
            )
        ]
    if protocol == "top50":
        return [
            top_classes(
                dataset.answers, seed=config.seed, max_answers=config.max_answers
            )
        ]
    if protocol in EXAM_SHAPES:
        count = config.limit_questions or None
        questions = exam_questions(
            dataset.answers,
            dataset.kind,
            seed=config.seed,
            shape=EXAM_SHAPES[protocol],
        )
        return questions[:count] if count else questions
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def score_question(
    method: Method, question: Question, source: CropSource, k: int | None
) -> dict[str, float]:
    """Cluster one question with one method, time it and score it."""
    crops = source.crops(question.indices)
    start = time.perf_counter()
    clustered = method.cluster(crops, source.reference, k)
    seconds = time.perf_counter() - start
    if getattr(method, "untimed", False):
        seconds = math.nan
    scores = score_clustering(question.truth, clustered.labels)
    n = len(question)
    scores.update({name: getattr(clustered, name) / n for name in BIN_NAMES})
    scores.update({"answers": float(n), "seconds": seconds})
    return scores


def summarise(questions: list[dict[str, float]], total: int) -> dict[str, float]:
    """Mean of each score over the questions that ran; crops/s over all of them."""
    summary = {"questions_ok": float(len(questions)), "questions": float(total)}
    for name in (*METRIC_NAMES, *BIN_NAMES, "answers"):
        values = [q[name] for q in questions]
        summary[name] = float(np.mean(values)) if values else math.nan
    seconds = sum(q["seconds"] for q in questions)
    answers = sum(q["answers"] for q in questions)
    timed = seconds > 0  # NaN (untimed) and 0 both compare False
    summary["crops_per_second"] = answers / seconds if timed else math.nan
    return summary


def run_one(
    method: Method, questions: list[Question], source: CropSource, mode: str
) -> dict:
    """Every question of one protocol with one method in one mode."""
    scored, errors = [], []
    for question in questions:
        k = question.k_true if mode == TRUE_K else None
        try:
            scores = score_question(method, question, source, k)
        except Exception as err:  # a failing method is a result, not a crash
            errors.append(f"{question.name}: {type(err).__name__}: {err}")
            continue
        scored.append({"question": question.name, **scores})
    return {
        "summary": summarise(scored, len(questions)),
        "errors": errors,
        "per_question": scored,
    }


def evaluate(
    dataset: Dataset,
    config: RunConfig,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> dict:
    """Run the configured protocols and methods on a dataset.

    Returns:
        A JSON-ready dict: the configuration, question sizes per protocol, and one
        entry per (protocol, mode, method) with its summary, errors and per-question
        scores.
    """
    source = CropSource(dataset, config.scanify, config.seed)
    methods = {
        spec: build_method(spec, dataset.kind, config.seed) for spec in config.methods
    }
    results, protocols = [], {}
    for protocol in config.protocols:
        questions = build_questions(dataset, protocol, config)
        sizes = [len(q) for q in questions]
        protocols[protocol] = {
            "questions": len(questions),
            "answers": int(sum(sizes)),
            "answers_min": int(min(sizes)),
            "answers_median": float(np.median(sizes)),
            "answers_max": int(max(sizes)),
            "k_true_median": float(np.median([q.k_true for q in questions])),
        }
        modes = [AUTO_K] if protocol in EXAM_SHAPES else [TRUE_K, AUTO_K]
        for mode in modes:
            for spec, method in methods.items():
                if mode == TRUE_K and not method.supports_true_k:
                    continue
                if mode == AUTO_K and not getattr(method, "supports_auto_k", True):
                    continue
                start = time.perf_counter()
                outcome = run_one(method, questions, source, mode)
                log(
                    f"{protocol:6s} {mode:6s} {spec:16s} "
                    f"{time.perf_counter() - start:7.1f} s, "
                    f"{len(outcome['errors'])} error(s)"
                )
                results.append(
                    {"protocol": protocol, "mode": mode, "method": spec, **outcome}
                )
    return {
        "kind": dataset.kind,
        "data": str(dataset.root),
        "images": len(dataset),
        "seed": config.seed,
        "scanify": config.scanify,
        "limit_questions": config.limit_questions,
        "max_answers": config.max_answers,
        "code": code_fingerprint(),
        # The crops/s columns are this machine's.
        "machine": describe_machine(),
        "protocols": protocols,
        "results": results,
        **config.extra,
    }
