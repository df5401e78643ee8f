# SPDX-License-Identifier: AGPL-3.0-or-later
"""The letter model's confident errors, picked and drawn for judging by eye."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from django.test import SimpleTestCase
from PIL import Image

from plom_clustering_plugin.ml.letters import LETTERS
from plom_clustering_plugin.training import letters_errors


def one_hot_ish(guess: str, confidence: float) -> np.ndarray:
    """Probabilities over the 11 letters with ``guess`` winning at ``confidence``."""
    row = np.full(len(LETTERS), (1 - confidence) / (len(LETTERS) - 1))
    row[LETTERS.index(guess)] = confidence
    return row


class ConfidentErrorsTest(SimpleTestCase):
    def setUp(self):
        # (label, guess, confidence, blank)
        self.cases = [
            ("A", "A", 0.99, False),  # right
            ("b", "D", 0.70, False),  # wrong, confident
            ("f", "b", 0.95, False),  # wrong, more confident
            ("a", "d", 0.30, False),  # wrong but unsure: inside the bin
            ("E", "e", 0.90, True),  # called blank: not the classifier's error
        ]
        self.truth = [c[0] for c in self.cases]
        self.p = np.stack([one_hot_ish(c[1], c[2]) for c in self.cases])
        self.blank = np.array([c[3] for c in self.cases])

    def test_only_confident_written_errors_most_confident_first(self):
        rows = letters_errors.confident_errors(self.p, self.truth, self.blank, 0.5)
        self.assertEqual(rows.tolist(), [2, 1])

    def test_the_evaluation_counts_the_same_errors_outside_the_bin(self):
        from plom_clustering_plugin.training.letters_eval import score

        rows = letters_errors.confident_errors(self.p, self.truth, self.blank, 0.5)
        report = score(self.p, self.truth, self.blank, 0.5)
        # 3 written answers are outside the bin (0.99, 0.70, 0.95); 2 are wrong.
        self.assertAlmostEqual(report["error_outside_unsure"], len(rows) / 3)

    def test_sheets_hold_every_error_with_its_caption(self):
        rows = letters_errors.confident_errors(self.p, self.truth, self.blank, 0.5)
        images = np.full((len(self.cases), 64, 64), 255, np.uint8)
        images[:, 10:54, 30:34] = 0
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "errors"
            records = letters_errors.write_error_sheets(
                images, self.truth, self.p, rows, out
            )
            self.assertEqual([r["row"] for r in records], [2, 1])
            self.assertEqual(
                [(r["label"], r["guess"]) for r in records], [("f", "b"), ("b", "D")]
            )
            self.assertEqual(json.loads((out / "errors.json").read_text()), records)
            sheet = np.asarray(Image.open(out / "sheet0.png"))
            tile = letters_errors.TILE
            self.assertEqual(sheet.shape, (tile, letters_errors.COLUMNS * tile))
            # Both tiles carry their letter's ink; the third place is empty paper.
            self.assertTrue((sheet[:64, :tile] < 128).any())
            self.assertTrue((sheet[:64, tile : 2 * tile] < 128).any())
            self.assertFalse((sheet[:, 2 * tile : 3 * tile] < 128).any())

    def test_more_errors_than_a_sheet_holds_start_another(self):
        n = letters_errors.PER_SHEET + 3
        truth = ["A"] * n
        p = np.stack([one_hot_ish("a", 0.9)] * n)
        images = np.full((n, 64, 64), 255, np.uint8)
        rows = letters_errors.confident_errors(p, truth, np.zeros(n, bool), 0.5)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            letters_errors.write_error_sheets(images, truth, p, rows, out)
            self.assertEqual(
                sorted(f.name for f in out.glob("sheet*.png")),
                ["sheet0.png", "sheet1.png"],
            )
            last = Image.open(out / "sheet1.png")
            self.assertEqual(last.height, letters_errors.TILE)  # 3 tiles: one row
