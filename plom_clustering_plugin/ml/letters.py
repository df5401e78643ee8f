# SPDX-License-Identifier: AGPL-3.0-or-later
"""The multiple-choice letter model: find the written letter in a box, classify it.

A prepared crop may hold more than the answer: a crossed-out first attempt, a circle
drawn around the letter, a stray dot, or a leftover piece of the printed box.  The ink
is split into marks (connected components, merged when their pixels are close, so the
strokes of an ``E`` or a broken stroke stay one mark), obvious non-letters are dropped,
and the network scores the remaining candidates.  It has a twelfth "not a letter"
output; the candidate that looks most like a letter (ties: the largest) is the answer.

Run time needs numpy, scipy, Pillow and onnxruntime only: no torch, no Django.

Example::

    from plom_clustering_plugin.ml.letters import LetterEmbedder
    embedder = LetterEmbedder.from_file(entry, path)  # manifest entry + verified file
    vectors = embedder.embed(prepared_crops)          # sqrt(probabilities), (N, 11)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from .manifest import ModelEntry
from .onnx_runtime import check_input, load_session, normalise
from .preprocess import PreparedCrop, fit_to_canvas

#: The 11 answer classes; ``C`` holds both C and c (same shape).
LETTERS = ("A", "B", "C", "D", "E", "F", "a", "b", "d", "e", "f")
#: The network's input canvas and the square the letter is fitted into (a margin
#: keeps strokes off the border, as in training).
CANVAS = 64
LETTER_BOX = 56
#: Marks whose bounding boxes are closer than this fraction of the tallest mark's
#: height (clipped to ``MERGE_GAP_PIXELS``) belong to one letter: the bars of an ``E``,
#: a stroke broken by a light pen.
MERGE_GAP_FRACTION = 0.2
MERGE_GAP_PIXELS = (3, 20)
#: A mark with less ink than this fraction of the largest mark, or shorter than this
#: fraction of its longer side, is a dot or a speck.
MIN_INK_FRACTION = 0.12
MIN_SIZE_FRACTION = 0.25
#: A mark this many times longer than thick, and longer than ``LINE_LENGTH`` times any
#: compact mark, is a line (a leftover printed edge); a letter drawn as separate
#: straight strokes (an ``E``) has no compact mark to compare with, so it stays.  (Also
#: sparing lines next to a compact mark kept detached ``b``/``d`` stems, +0.3 points on
#: clean and scanned letters, but cost 1.5 points among clutter; training used this.)
LINE_ELONGATION = 6.0
LINE_LENGTH = 1.2
#: A mark met by at least this many of 8 rays cast from another mark's centre is a
#: circle drawn around that mark (an open letter such as ``E`` or ``C`` meets fewer),
#: provided the inner mark is no mere dot (a dot inside a ``D`` does not make a circle).
RING_RAYS = 7
RING_INNER_INK = 0.05
#: Only the largest few candidates are classified.
MAX_CANDIDATES = 3
#: Letter-likeness scores closer than this are a tie, broken by size.
SCORE_TIE = 0.05
#: A second candidate at least this letter-like and this large relative to the chosen one
#: is a second answer: a disagreement lands in the unsure bin.
SECOND_ANSWER_SCORE = 0.6
SECOND_ANSWER_INK = 0.5
#: Default winning probability under which an answer goes to the unsure bin; the
#: manifest entry's metrics carry the value calibrated for its weights.
DEFAULT_REVIEW_CONFIDENCE = 0.8


@dataclass(frozen=True)
class Mark:
    """One candidate mark of a crop.

    Attributes:
        ink: the mark's own ink (other marks zeroed), cut to its bounding box.
        bbox: ``(top, left, bottom, right)`` within the crop's ink map.
        amount: total ink of the mark.
    """

    ink: np.ndarray
    bbox: tuple[int, int, int, int]
    amount: float


def merge_gap(heights: Sequence[int]) -> int:
    """The bounding-box gap bridged when grouping components, from the tallest one."""
    low, high = MERGE_GAP_PIXELS
    return int(np.clip(round(MERGE_GAP_FRACTION * max(heights)), low, high))


def _long_side(box: tuple[int, int, int, int]) -> int:
    return max(box[2] - box[0], box[3] - box[1])


def _elongated(box: tuple[int, int, int, int]) -> bool:
    height, width = box[2] - box[0], box[3] - box[1]
    return max(height, width) >= LINE_ELONGATION * max(min(height, width), 1)


def _lines(boxes: list[tuple[int, int, int, int]]) -> set[int]:
    """Elongated marks much longer than every compact mark."""
    compact = [_long_side(b) for b in boxes if not _elongated(b)]
    if not compact:
        return set()
    longest = max(compact)
    return {
        i
        for i, b in enumerate(boxes)
        if _elongated(b) and _long_side(b) > LINE_LENGTH * longest
    }


_RAYS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def _surrounds(labels: np.ndarray, outer: int, box: tuple[int, int, int, int]) -> bool:
    """True when component ``outer`` is hit by most rays cast from ``box``'s centre."""
    y0, x0 = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    height, width = labels.shape
    hits = 0
    for dy, dx in _RAYS:
        steps = np.arange(1, max(height, width))
        ys, xs = y0 + dy * steps, x0 + dx * steps
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        hits += bool((labels[ys[inside], xs[inside]] == outer).any())
    return hits >= RING_RAYS


def _contains(outer: tuple, inner: tuple) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def _near(a: tuple, b: tuple, gap: int) -> bool:
    """Bounding boxes at most ``gap`` pixels apart both ways."""
    dy = max(0, b[0] - a[2], a[0] - b[2])
    dx = max(0, b[1] - a[3], a[1] - b[3])
    return dy <= gap and dx <= gap


def find_marks(ink: np.ndarray, limit: int = MAX_CANDIDATES) -> list[Mark]:
    """Split a prepared ink map into candidate letter marks, largest first.

    Connected components are grouped when their boxes nearly touch (one letter drawn
    in several strokes).  Lines, circles drawn around another mark, dots and specks
    are dropped unless nothing else is left; at most ``limit`` marks are returned, and
    never none for a crop with ink.

    Args:
        ink: float ink map (1 = ink), e.g. ``PreparedCrop.ink``.
        limit: how many candidates to keep at most.
    """
    ink = np.asarray(ink, np.float32)
    parts, count = ndimage.label(ink > 0, structure=np.ones((3, 3), bool))
    if count <= 1:
        return [Mark(ink, (0, 0) + ink.shape, float(ink.sum()))]
    boxes = [
        (s[0].start, s[1].start, s[0].stop, s[1].stop)
        for s in ndimage.find_objects(parts)
    ]
    sizes = ndimage.sum_labels(ink, parts, index=np.arange(1, count + 1))
    lines = _lines(boxes)
    rings = {
        i
        for i in range(count)
        if i not in lines
        and any(
            j != i
            and sizes[j] >= RING_INNER_INK * sizes[i]
            and _contains(boxes[i], boxes[j])
            and _surrounds(parts, i + 1, boxes[j])
            for j in range(count)
        )
    }
    group = list(range(count))  # union-find over the remaining components

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    plain = [i for i in range(count) if i not in lines and i not in rings]
    if plain:
        gap = merge_gap([boxes[i][2] - boxes[i][0] for i in plain])
        for a_pos, a in enumerate(plain):
            for b in plain[a_pos + 1 :]:
                if _near(boxes[a], boxes[b], gap):
                    group[root(b)] = root(a)
    labels = np.zeros(count + 1, np.int64)
    labels[1:] = [root(i) + 1 for i in range(count)]
    merged = labels[parts]
    ids = sorted({root(i) for i in range(count)})
    amounts = ndimage.sum_labels(ink, merged, index=[i + 1 for i in ids])
    order = [ids[k] for k in np.argsort(-amounts, kind="stable")]
    amount_of = dict(zip(ids, amounts, strict=True))
    letters = [i for i in order if i not in lines and i not in rings]
    marks = []
    for i in letters or order:
        rows, cols = np.nonzero(merged == i + 1)
        top, left = int(rows.min()), int(cols.min())
        bottom, right = int(rows.max()) + 1, int(cols.max()) + 1
        window = merged[top:bottom, left:right] == i + 1
        own = np.where(window, ink[top:bottom, left:right], 0).astype(np.float32)
        marks.append(Mark(own, (top, left, bottom, right), float(amount_of[i])))
    if (
        len(marks) > 1 and letters
    ):  # drop dots: little ink, or small next to the largest
        largest = marks[0]
        side = _long_side(largest.bbox)
        marks = [largest] + [
            m
            for m in marks[1:]
            if m.amount >= MIN_INK_FRACTION * largest.amount
            and _long_side(m.bbox) >= MIN_SIZE_FRACTION * side
        ]
    return marks[:limit]


def letter_canvas(ink: np.ndarray) -> np.ndarray:
    """Fit one mark onto the network's canvas, aspect ratio kept, centred, ink 0..1."""
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    margin = (CANVAS - LETTER_BOX) // 2
    fitted = fit_to_canvas(ink, LETTER_BOX, LETTER_BOX)
    canvas[margin : margin + LETTER_BOX, margin : margin + LETTER_BOX] = fitted
    return np.clip(canvas, 0.0, 1.0)


def choose_answer(
    probabilities: np.ndarray, reject: np.ndarray, amounts: Sequence[float]
) -> np.ndarray:
    """Combine one crop's candidates into its 11 answer probabilities.

    Args:
        probabilities: ``(M, 11)`` letter probabilities of the crop's candidates.
        reject: ``(M,)`` probability that each candidate is not a letter.
        amounts: ink of each candidate (the tie-break: larger wins).

    Returns:
        ``(11,)`` probabilities: the most letter-like candidate's, diluted towards
        uniform by its own "not a letter" probability (so a doubtful mark is unsure); if a
        second, as letter-like and large candidate says another letter, the two are
        averaged and halved towards uniform, so the answer lands in the unsure bin.
    """
    score = 1.0 - np.asarray(reject, np.float64)
    best = max(
        range(len(score)),
        key=lambda i: (round(score[i] / SCORE_TIE), amounts[i]),
    )
    mixed = _dilute(probabilities[best], score[best])
    for i in range(len(score)):
        if (
            i != best
            and score[i] >= SECOND_ANSWER_SCORE
            and amounts[i] >= SECOND_ANSWER_INK * amounts[best]
            and probabilities[i].argmax() != probabilities[best].argmax()
        ):
            # Two answers: neither wins, whatever the threshold (max about 0.3).
            both = 0.5 * (mixed + _dilute(probabilities[i], score[i]))
            mixed = _dilute(both, 0.5)
            break
    return mixed


def _dilute(p: np.ndarray, letterlike: float) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return letterlike * p + (1.0 - letterlike) / len(p)


class LetterEmbedder:
    """:class:`~.embedders.Embedder` for handwritten letters A–F / a–f.

    Rows are ``sqrt(p)`` over the 11 classes (Hellinger), so ``ClassClusterer`` groups by
    letter and its confidence is the winning probability.  Blank crops give zero rows
    (blank detection stays with ``preprocess.prepare``).

    Attributes:
        review_confidence: winning probability under which an answer belongs in the
            unsure bin, calibrated on validation (from the manifest's metrics).
    """

    def __init__(
        self,
        entry: ModelEntry,
        session: Any,
        *,
        batch_size: int = 64,
        review_confidence: float | None = None,
    ) -> None:
        """Wrap a loaded session of the letter model.

        Args:
            entry: the manifest entry (input spec, labels, metrics).
            session: an ``onnxruntime.InferenceSession`` of the entry's file.
            batch_size: candidates per ``session.run``.
            review_confidence: override of the calibrated unsure threshold.
        """
        check_input(session, entry.input, entry.file)
        labels = tuple(entry.output.labels or ())
        if labels != LETTERS:
            raise ValueError(f"{entry.label}: output labels {labels} are not {LETTERS}")
        if entry.input.canvas != (CANVAS, CANVAS):
            raise ValueError(f"{entry.label}: canvas {entry.input.canvas} is not 64x64")
        self.entry = entry
        self.session = session
        #: False classifies all the crop's ink as one mark (for comparisons only).
        self.select_marks = True
        self.batch_size = max(1, int(batch_size))
        self.name = entry.name
        self.version = entry.version
        self.sha256: str | None = entry.sha256
        self.dot_reach = entry.input.dot_reach
        self.class_names = list(LETTERS)
        self.same_answer_distance = entry.same_answer_distance
        calibrated = entry.metrics.get("review_confidence", DEFAULT_REVIEW_CONFIDENCE)
        self.review_confidence = float(
            calibrated if review_confidence is None else review_confidence
        )
        outputs = [o.name for o in session.get_outputs()]
        self._outputs = ["probabilities", "reject"]
        if outputs[:2] != self._outputs:
            raise ValueError(
                f"{entry.label}: outputs {outputs} are not {self._outputs}"
            )

    @classmethod
    def from_file(
        cls,
        entry: ModelEntry,
        path: str | Path,
        *,
        threads: int = 1,
        batch_size: int = 64,
        review_confidence: float | None = None,
    ) -> LetterEmbedder:
        """Load (or reuse) the session of a verified weights file."""
        session = load_session(
            path, entry.sha256, threads=threads, input_spec=entry.input
        )
        return cls(
            entry,
            session,
            batch_size=batch_size,
            review_confidence=review_confidence,
        )

    def embed(self, crops: Sequence[PreparedCrop]) -> np.ndarray:
        """Return ``(len(crops), 11)`` float32 rows ``sqrt(p)`` (blank crops: zeros)."""
        probabilities = self.predict(crops)
        return np.sqrt(probabilities).astype(np.float32)

    def predict(self, crops: Sequence[PreparedCrop]) -> np.ndarray:
        """Return ``(len(crops), 11)`` answer probabilities (blank crops: zeros)."""
        owners: list[int] = []
        canvases: list[np.ndarray] = []
        amounts: list[float] = []
        for index, crop in enumerate(crops):
            if crop.is_blank:
                continue
            marks = (
                find_marks(crop.ink)
                if self.select_marks
                else [Mark(crop.ink, (0, 0) + crop.ink.shape, crop.ink_amount)]
            )
            for mark in marks:
                owners.append(index)
                canvases.append(letter_canvas(mark.ink))
                amounts.append(mark.amount)
        out = np.zeros((len(crops), len(LETTERS)), np.float64)
        if not canvases:
            return out
        probabilities, reject = self.run(np.stack(canvases))
        owner_array = np.asarray(owners)
        for index in np.unique(owner_array):
            rows = np.flatnonzero(owner_array == index)
            out[index] = choose_answer(
                probabilities[rows], reject[rows], [amounts[r] for r in rows]
            )
        return out

    def run(self, canvases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the network on ``(M, 64, 64)`` ink canvases, in batches.

        Returns:
            ``(M, 11)`` letter probabilities and ``(M,)`` "not a letter" probabilities.
        """
        spec = self.entry.input
        letters, reject = [], []
        for start in range(0, len(canvases), self.batch_size):
            batch = normalise(
                canvases[start : start + self.batch_size], spec.normalisation
            )
            batch = np.ascontiguousarray(batch[:, np.newaxis], dtype=spec.dtype)
            p, r = self.session.run(self._outputs, {spec.name: batch})
            letters.append(np.asarray(p, np.float64))
            reject.append(np.asarray(r, np.float64).reshape(-1))
        return np.concatenate(letters), np.concatenate(reject)
