# SPDX-License-Identifier: AGPL-3.0-or-later
"""Read an evaluation folder: ``labels.csv`` plus the images it names.

The layout is the one of ``crohme-dev``: a column ``image`` (a path relative to the
folder) and the truth, ``latex`` for handwritten math (``hme``) or ``label`` for
multiple-choice letters (``mcq``).  Other columns are ignored, and nothing is assumed
about file names or counts, so a held-out set with the same layout drops straight in.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: The truth column for each kind of answer.
TRUTH_COLUMN = {"hme": "latex", "mcq": "label"}

#: LaTeX spellings of one symbol, mapped to one of them (the data mixes both).
LATEX_ALIASES = {
    r"\lt": "<",
    r"\gt": ">",
    r"\le": r"\leq",
    r"\ge": r"\geq",
    r"\ne": r"\neq",
    r"\to": r"\rightarrow",
    r"\gets": r"\leftarrow",
    r"\lbrace": r"\{",
    r"\rbrace": r"\}",
}

# A command (\alpha, or an escaped symbol like \{), else any single non-space character.
_LATEX_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|\S")


def latex_answer_key(latex: str) -> str:
    r"""Canonical form of a LaTeX answer, so spacing and aliases do not split a class.

    ``"x_{1}"`` and ``"x _ { 1 }"`` give the same key; ``\lt`` and ``<`` too.  Braces are
    kept: dropping them would merge ``\frac{12}{3}`` with ``\frac{1}{23}``.
    """
    tokens = _LATEX_TOKEN.findall(latex)
    return " ".join(LATEX_ALIASES.get(token, token) for token in tokens)


def answer_key(kind: str, raw: str) -> str:
    """The class an answer belongs to, from its truth cell."""
    if kind == "hme":
        return latex_answer_key(raw)
    return raw.strip()


@dataclass
class Dataset:
    """The images of one folder and the true answer of each.

    Attributes:
        root: the folder holding ``labels.csv``.
        kind: ``hme`` or ``mcq``.
        paths: image file of each answer.
        answers: canonical true answer of each image (see :func:`answer_key`).
    """

    root: Path
    kind: str
    paths: list[Path]
    answers: list[str]
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        """The number of images."""
        return len(self.paths)

    def class_sizes(self) -> Counter:
        """How many images each answer class has."""
        return Counter(self.answers)

    def image(self, index: int, *, cache: bool = True) -> np.ndarray:
        """The image as a grey ``uint8`` array (255 = white).

        With ``cache`` it is decoded once and kept, since protocols reuse images.
        """
        cached = self._cache.get(index)
        if cached is None:
            with Image.open(self.paths[index]) as img:
                cached = np.asarray(img.convert("L"), dtype=np.uint8)
            if cache:
                self._cache[index] = cached
        return cached


def load_dataset(root: str | Path, kind: str) -> Dataset:
    """Read ``root/labels.csv``.

    Args:
        root: the folder.
        kind: ``hme`` (truth column ``latex``) or ``mcq`` (truth column ``label``).

    Raises:
        ValueError: unknown kind, a missing column, an empty table, or an image path that
            does not exist (the message names the row).
    """
    if kind not in TRUTH_COLUMN:
        raise ValueError(f"unknown kind {kind!r}: use 'hme' or 'mcq'")
    root = Path(root)
    table = root / "labels.csv"
    if not table.is_file():
        raise ValueError(f"{table} not found: the data folder needs a labels.csv")
    column = TRUTH_COLUMN[kind]
    paths: list[Path] = []
    answers: list[str] = []
    with table.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"image", column} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f"{table} lacks column(s) {sorted(missing)}; "
                f"--kind {kind} needs 'image' and '{column}'"
            )
        for line, row in enumerate(reader, start=2):
            path = root / row["image"]
            if not path.is_file():
                raise ValueError(f"{table}:{line}: image {row['image']!r} not found")
            paths.append(path)
            answers.append(answer_key(kind, row[column] or ""))
    if not paths:
        raise ValueError(f"{table} lists no images")
    return Dataset(root, kind, paths, answers)
