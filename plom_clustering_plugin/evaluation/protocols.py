# SPDX-License-Identifier: AGPL-3.0-or-later
"""Turn a labelled folder into questions to cluster, following four protocols.

* ``all``: every answer class with at least 2 images, one big question (HSC paper).
* ``top50``: the 50 most frequent classes, one question (HSC / plom_ml).
* ``exam``: many simulated exam questions, each a skewed mix of a few answer classes
  plus one-off answers; the method must choose k itself.
* ``many``: the same with dozens of answer classes in each question and a milder skew,
  between ``exam`` and ``all`` in size (automatic k only, as ``exam``).

Every random choice comes from ``numpy.random.default_rng([seed, ...])`` so a run is
reproducible from its seed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Classes (by size) in the ``top50`` protocol.
TOP_CLASSES = 50
#: Questions in the ``exam`` protocol.
EXAM_QUESTIONS = 50
#: Requested answers per exam question (fewer when the classes run out of images).
EXAM_SIZE = (40, 300)
#: Answer classes per exam question, by kind; only 11 letters exist for ``mcq``.
EXAM_CLASSES = {"hme": (3, 8), "mcq": (2, 6)}
#: Share of one-off answers per exam question, by kind; letters have no one-offs.
EXAM_ONE_OFF_SHARE = {"hme": (0.05, 0.15), "mcq": (0.0, 0.0)}
#: A class needs this many images to be a common answer in an exam question.
EXAM_MIN_CLASS_IMAGES = 5
#: Share of the common answers taken by the dominant ("correct") answer.
EXAM_DOMINANT_SHARE = (0.45, 0.75)
#: Each further (wrong) answer is this many times as common as the previous one.
EXAM_DECAY = (0.35, 0.7)
#: Each common answer appears at least this often in its question.
EXAM_MIN_CLASS_COUNT = 2


@dataclass(frozen=True)
class ExamShape:
    """How :func:`exam_questions` draws its questions.

    Attributes:
        name: the questions' name prefix (``exam-07``).
        classes: answer classes per question, by kind.
        one_off_share: share of one-off answers per question, by kind.
        size: requested answers per question (fewer when classes run out of images).
        min_class_images: images a class needs to be a common answer.
        dominant_share: share of the common answers the dominant answer takes.
        decay: each further answer is this many times as common as the previous one.
    """

    name: str
    classes: dict[str, tuple[int, int]]
    one_off_share: dict[str, tuple[float, float]]
    size: tuple[int, int]
    min_class_images: int
    dominant_share: tuple[float, float]
    decay: tuple[float, float]


#: The ``exam`` protocol: a few answers, one of them dominant.
EXAM = ExamShape(
    "exam",
    EXAM_CLASSES,
    EXAM_ONE_OFF_SHARE,
    EXAM_SIZE,
    EXAM_MIN_CLASS_IMAGES,
    EXAM_DOMINANT_SHARE,
    EXAM_DECAY,
)
#: The ``many`` protocol: dozens of answers, the largest a sixth to a third of them
#: (on crohme-val: 63-200 answers, of a median 28-33 distinct ones counting one-offs).
MANY = ExamShape(
    "many",
    {"hme": (12, 25), "mcq": (6, 11)},
    EXAM_ONE_OFF_SHARE,
    (150, 300),
    3,
    (0.15, 0.35),
    (0.8, 0.95),
)


@dataclass(frozen=True)
class Question:
    """One set of answers to cluster.

    Attributes:
        name: e.g. ``"all"`` or ``"exam-07"``.
        indices: rows of the dataset, in the order the method sees them.
        truth: the true answer class of each row (one-offs have unique classes).
    """

    name: str
    indices: np.ndarray
    truth: list[str]

    @property
    def k_true(self) -> int:
        """The number of distinct true answers."""
        return len(set(self.truth))

    def __len__(self) -> int:
        """The number of answers."""
        return len(self.indices)


def _rows_by_class(answers: Sequence[str]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = defaultdict(list)
    for row, answer in enumerate(answers):
        rows[answer].append(row)
    return rows


def _question(name: str, rows: list[int], answers: Sequence[str], rng) -> Question:
    """Shuffle the rows (order can matter to a clusterer) and attach the truth."""
    order = np.array(rows, dtype=np.int64)[rng.permutation(len(rows))]
    return Question(name, order, [answers[i] for i in order])


def _subsample(
    by_class: dict[str, list[int]], max_answers: int | None, rng
) -> list[int]:
    """Keep every row, or a stratified sample of about ``max_answers`` rows."""
    total = sum(len(rows) for rows in by_class.values())
    if max_answers is None or total <= max_answers:
        return [row for rows in by_class.values() for row in rows]
    fraction = max_answers / total
    kept: list[int] = []
    for rows in by_class.values():
        count = min(len(rows), max(2, round(len(rows) * fraction)))
        kept.extend(rng.choice(rows, size=count, replace=False).tolist())
    return kept


def all_classes(
    answers: Sequence[str], *, seed: int = 0, max_answers: int | None = None
) -> Question:
    """Every class with at least 2 images (stratified down to ``max_answers``)."""
    rng = np.random.default_rng([seed, 1])
    by_class = {a: r for a, r in sorted(_rows_by_class(answers).items()) if len(r) >= 2}
    if not by_class:
        raise ValueError("no answer class has 2 or more images")
    return _question("all", _subsample(by_class, max_answers, rng), answers, rng)


def top_classes(
    answers: Sequence[str],
    *,
    count: int = TOP_CLASSES,
    seed: int = 0,
    max_answers: int | None = None,
) -> Question:
    """The ``count`` most frequent classes with at least 2 images (ties by name)."""
    rng = np.random.default_rng([seed, 2])
    ranked = sorted(
        _rows_by_class(answers).items(), key=lambda kv: (-len(kv[1]), kv[0])
    )
    by_class = {a: r for a, r in ranked[:count] if len(r) >= 2}
    if not by_class:
        raise ValueError("no answer class has 2 or more images")
    rows = _subsample(by_class, max_answers, rng)
    return _question(f"top{count}", rows, answers, rng)


def _exam_counts(
    sizes: np.ndarray, target: int, rng, shape: ExamShape = EXAM
) -> np.ndarray:
    """Skewed answer counts for classes sorted by size, scaled to what exists.

    The dominant share goes to the first class and each further class gets a decaying
    share.  When a class lacks images every count shrinks by the same factor, so the
    skew survives (a question then has fewer answers than ``target``).
    """
    dominant = rng.uniform(*shape.dominant_share)
    decay = rng.uniform(*shape.decay)
    rest = decay ** np.arange(len(sizes) - 1)
    shares = np.concatenate([[dominant], (1 - dominant) * rest / max(rest.sum(), 1e-9)])
    wanted = shares * target
    scale = min(1.0, float(np.min(sizes / wanted)))
    counts = np.floor(wanted * scale).astype(int)
    return np.minimum(np.maximum(counts, EXAM_MIN_CLASS_COUNT), sizes)


def exam_questions(
    answers: Sequence[str],
    kind: str,
    *,
    count: int = EXAM_QUESTIONS,
    seed: int = 0,
    shape: ExamShape = EXAM,
) -> list[Question]:
    """Simulated exam questions with a dominant answer, wrong answers and one-offs.

    With the default :data:`EXAM` shape, each question draws 3-8 classes (2-6 for
    ``mcq``) among those with at least :data:`EXAM_MIN_CLASS_IMAGES` images, favouring
    big classes, gives them skewed counts towards a requested 40-300 answers, and adds
    5-15 % one-off answers taken from classes with a single image (``mcq``: none).
    :data:`MANY` draws more classes with a milder skew.

    Raises:
        ValueError: too few classes with enough images for even one question.
    """
    by_class = _rows_by_class(answers)
    common = sorted(a for a, r in by_class.items() if len(r) >= shape.min_class_images)
    one_offs = sorted(r[0] for r in by_class.values() if len(r) == 1)
    low, high = shape.classes[kind]
    if len(common) < low:
        raise ValueError(
            f"the {shape.name} protocol needs {low} classes with >="
            f" {shape.min_class_images} images; this data has {len(common)}"
        )
    sizes_all = np.array([len(by_class[a]) for a in common], dtype=float)
    questions = []
    for number in range(count):
        rng = np.random.default_rng([seed, 3, number])
        n_classes = int(rng.integers(low, min(high, len(common)) + 1))
        picked = rng.choice(
            len(common), n_classes, replace=False, p=sizes_all / sizes_all.sum()
        )
        picked = sorted(picked, key=lambda i: (-sizes_all[i], common[i]))
        target = int(rng.integers(shape.size[0], shape.size[1] + 1))
        one_off_share = rng.uniform(*shape.one_off_share[kind])
        counts = _exam_counts(
            sizes_all[picked], round(target * (1 - one_off_share)), rng, shape
        )
        rows: list[int] = []
        for i, n in zip(picked, counts, strict=True):
            rows.extend(rng.choice(by_class[common[i]], int(n), replace=False).tolist())
        wanted_one_offs = round(len(rows) * one_off_share / (1 - one_off_share))
        n_one_offs = min(wanted_one_offs, len(one_offs))
        if n_one_offs:
            rows.extend(rng.choice(one_offs, n_one_offs, replace=False).tolist())
        questions.append(_question(f"{shape.name}-{number:02d}", rows, answers, rng))
    return questions
