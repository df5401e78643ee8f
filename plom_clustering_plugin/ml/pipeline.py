# SPDX-License-Identifier: AGPL-3.0-or-later
"""The whole core flow for one question: preprocess -> embed -> cluster -> bins.

Feed crops one at a time with :meth:`Pipeline.add` (so a job never holds every full
crop in memory), record the answers that could not be cropped with
:meth:`Pipeline.add_problem`, then call :meth:`Pipeline.finish`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from .clustering import (
    DIFFERENT_ANSWER_DISTANCE,
    ClassClusterer,
    Clusterer,
    LinkageClusterer,
)
from .embedders import Embedder
from .preprocess import PreparedCrop, prepare

#: Answer states, in the user's words.
ANSWERED = "answered"
LOW_CONFIDENCE = "low_confidence"
BLANK = "blank"
UNREADABLE = "unreadable"
NOT_SCANNED = "not_scanned"
PROBLEM_STATES = (UNREADABLE, NOT_SCANNED)

#: Cluster kinds: a real group, or the group of one-off answers.
GROUP = "group"
OTHER = "other"

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class Answer:
    """What the pipeline decided for one answer.

    Attributes:
        key: the caller's identifier (the job uses the paper number).
        state: one of ``answered``, ``low_confidence`` (review bin), ``blank``,
            ``unreadable``, ``not_scanned``.
        group: index into :attr:`PipelineResult.groups` for answered ones; the suggested
            group for low-confidence ones; None otherwise.
        confidence: in ``[0, 1]``; 1 for blank and problem answers (no doubt about those).
        distance: cosine distance to the group's centroid (0 when not clustered).
        message: why an answer is unreadable or not scanned.
        vector: the embedding of a written answer (kept so that a reviewer can split a
            group or get suggestions without re-running the model); None otherwise.
    """

    key: Hashable
    state: str
    group: int | None = None
    confidence: float = 1.0
    distance: float = 0.0
    message: str = ""
    vector: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Group:
    """One proposed group of answers.

    Attributes:
        number: stable number, 1 = largest group (the "other" group comes last).
        name: a display name: the recognised class (e.g. ``"B"``) or ``"g01"``-style.
        kind: ``group`` or ``other`` (one-off answers gathered together).
        size: how many answers it holds, review-bin suggestions excluded.
    """

    number: int
    name: str
    kind: str = GROUP
    size: int = 0


@dataclass
class PipelineResult:
    """The groups and every answer's place."""

    groups: list[Group] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    threshold: float = 0.0


class Pipeline:
    """Collect crops for one question, then cluster them."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        clusterer: Clusterer | None = None,
        reference: np.ndarray | None = None,
        review_confidence: float = 0.5,
        batch_size: int = 64,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Prepare a pipeline.

        Args:
            embedder: turns prepared crops into vectors.
            clusterer: groups the vectors; by default one group per recognised class
                for classifier embedders, else anonymous groups with automatic k.
            reference: the answer rectangle cut from the blank reference page.
            review_confidence: answers less confident than this go to the review bin.
            batch_size: crops per ``embed`` call.
            progress: called as ``progress(stage, done, total)``.
        """
        self.embedder = embedder
        if clusterer is None:
            clusterer = (
                ClassClusterer(embedder.class_names)
                if embedder.class_names
                else LinkageClusterer(
                    embedder.same_answer_distance,
                    getattr(
                        embedder, "different_answer_distance", DIFFERENT_ANSWER_DISTANCE
                    ),
                )
            )
        self.clusterer = clusterer
        self.reference = reference
        self.dot_reach = getattr(embedder, "dot_reach", 0)
        self.review_confidence = review_confidence
        self.batch_size = max(1, int(batch_size))
        self.progress = progress or (lambda stage, done, total: None)
        self._prepared: list[tuple[Hashable, PreparedCrop]] = []
        self._problems: list[Answer] = []

    def add(self, key: Hashable, crop: np.ndarray) -> None:
        """Preprocess one crop now and keep only its small ink map."""
        try:
            prepared = prepare(crop, self.reference, dot_reach=self.dot_reach)
        except ValueError as err:
            self.add_problem(key, UNREADABLE, str(err))
            return
        self._prepared.append((key, prepared))

    def add_problem(self, key: Hashable, state: str, message: str) -> None:
        """Record an answer that has no usable crop (not scanned, unreadable)."""
        if state not in PROBLEM_STATES:
            raise ValueError(f"unknown problem state {state!r}")
        self._problems.append(Answer(key, state, message=message))

    def finish(self) -> PipelineResult:
        """Embed the written answers in batches, cluster them and fill the bins."""
        written = [(k, p) for k, p in self._prepared if not p.is_blank]
        blanks = [Answer(k, BLANK) for k, p in self._prepared if p.is_blank]
        vectors = self._embed([p for _, p in written])
        self.progress("clustering", 0, 1)
        clustering = self.clusterer.cluster(vectors)
        self.progress("clustering", 1, 1)
        result = PipelineResult(threshold=clustering.threshold)
        sizes = Counter(clustering.labels.tolist())
        # Anonymous one-member groups are one-off answers: gather them in "other".
        # A recognised class (a lone "F") is a real group whatever its size.
        names = clustering.names or {}
        lone = 1 if clustering.names is None else 0
        real = [label for label in range(clustering.k) if sizes[label] > lone]
        singles = [label for label in range(clustering.k) if sizes[label] <= lone]
        group_of: dict[int, int] = {}
        for label in real:
            group_of[label] = len(result.groups)
            number = len(result.groups) + 1
            result.groups.append(Group(number, names.get(label) or f"g{number:02d}"))
        if singles:
            other = len(result.groups)
            result.groups.append(Group(other + 1, "other", OTHER))
            group_of.update({label: other for label in singles})
        for i, (key, _) in enumerate(written):
            label = int(clustering.labels[i])
            group = group_of[label]
            confident = clustering.confidence[i] >= self.review_confidence
            in_other = result.groups[group].kind == OTHER
            state = ANSWERED if confident or in_other else LOW_CONFIDENCE
            result.answers.append(
                Answer(
                    key,
                    state,
                    group=group,
                    confidence=1.0 if in_other else float(clustering.confidence[i]),
                    distance=float(clustering.distance[i]),
                    vector=vectors[i],
                )
            )
            if state == ANSWERED:
                result.groups[group].size += 1
        result.answers.extend(blanks)
        result.answers.extend(self._problems)
        return result

    def _embed(self, crops: list[PreparedCrop]) -> np.ndarray:
        """Run the embedder over batches, reporting progress."""
        total = len(crops)
        chunks = []
        self.progress("embedding", 0, total)
        for start in range(0, total, self.batch_size):
            chunks.append(self.embedder.embed(crops[start : start + self.batch_size]))
            self.progress("embedding", min(start + self.batch_size, total), total)
        if not chunks:
            return np.zeros((0, 1), np.float32)
        return np.concatenate(chunks, axis=0)
