# SPDX-License-Identifier: AGPL-3.0-or-later
"""Contact sheets of the letter model's confident errors, for judging them by eye.

letters-train's labels are a few percent wrong (truncated letters, another character,
the other case's shape), which is about the error the model leaves outside its unsure
bin.  Looking at those errors is the only way to tell the model's mistakes from the
label's: ``letters_eval --errors DIR`` writes them here, most confident first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..ml.letters import LETTERS

#: Tiles per row and per sheet; each tile is the 64 x 64 letter and a caption line.
COLUMNS, PER_SHEET, TILE = 10, 50, 96


def confident_errors(
    probabilities: np.ndarray, truth: Sequence[str], blank: np.ndarray, threshold: float
) -> np.ndarray:
    """Rows read wrongly with a winning probability of at least ``threshold``.

    Returns:
        Row indices, most confident first.
    """
    truth_idx = np.array([LETTERS.index(t) for t in truth])
    guess = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    rows = np.flatnonzero((guess != truth_idx) & (confidence >= threshold) & ~blank)
    return rows[np.argsort(-confidence[rows], kind="stable")]


def write_error_sheets(
    images: np.ndarray,
    truth: Sequence[str],
    probabilities: np.ndarray,
    rows: np.ndarray,
    out: Path,
) -> list[dict]:
    """Write ``sheet<N>.png`` (numbered tiles: label > guess, confidence) and ``errors.json``.

    Args:
        images: ``(N, 64, 64)`` uint8 letters, dark ink on white.
        truth: the label of each image.
        probabilities: ``(N, 11)`` the model's letter probabilities.
        rows: the rows to show, in order (see :func:`confident_errors`).
        out: folder, created if missing.

    Returns:
        One record per tile, as written to ``errors.json``.
    """
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for first in range(0, len(rows), PER_SHEET):
        chunk = rows[first : first + PER_SHEET]
        lines = (len(chunk) + COLUMNS - 1) // COLUMNS
        sheet = Image.new("L", (COLUMNS * TILE, lines * TILE), 255)
        draw = ImageDraw.Draw(sheet)
        for place, row in enumerate(chunk, start=first):
            x, y = (place % COLUMNS) * TILE, ((place - first) // COLUMNS) * TILE
            guess = LETTERS[int(probabilities[row].argmax())]
            confidence = float(probabilities[row].max())
            sheet.paste(Image.fromarray(images[row]), (x + (TILE - 64) // 2, y))
            draw.text(
                (x + 2, y + 66),
                f"{place}:{truth[row]}>{guess} {confidence:.2f}",
                fill=0,
            )
            records.append(
                {
                    "tile": place,
                    "row": int(row),
                    "label": truth[row],
                    "guess": guess,
                    "confidence": round(confidence, 4),
                }
            )
        sheet.save(out / f"sheet{first // PER_SHEET}.png")
    (out / "errors.json").write_text(json.dumps(records, indent=1) + "\n")
    return records
