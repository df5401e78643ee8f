# SPDX-License-Identifier: AGPL-3.0-or-later
"""Synthetic training data drawn in handwriting fonts: expressions and letters."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from django.test import SimpleTestCase

from plom_clustering_plugin.ml.letters import LETTERS
from plom_clustering_plugin.training import fonts, hme_data, hme_synth, letters_fonts
from tests.test_hme_training_smoke import plom_fonts


class FontFilesTests(SimpleTestCase):
    def test_nothing_asked_gives_no_fonts(self):
        self.assertEqual(fonts.font_files(None), [])
        self.assertEqual(fonts.font_files(""), [])

    def test_a_comma_list_of_files(self):
        files = plom_fonts()[:2]
        self.assertEqual(fonts.font_files(",".join(files)), [Path(f) for f in files])

    def test_a_missing_file_is_named_in_the_error(self):
        with self.assertRaisesRegex(FileNotFoundError, "nope.ttf"):
            fonts.font_files(f"{plom_fonts()[0]},/tmp/nope.ttf")

    def test_a_folder_is_searched_for_font_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(plom_fonts()[0])
            (Path(tmp) / "sub").mkdir()
            (Path(tmp) / "sub" / source.name).write_bytes(source.read_bytes())
            (Path(tmp) / "notes.txt").write_text("not a font")
            self.assertEqual(fonts.font_files(tmp), [Path(tmp) / "sub" / source.name])

    def test_debian_lists_only_installed_fonts(self):
        for path in fonts.font_files("debian"):
            self.assertTrue(path.is_file())
            self.assertIn(str(path), fonts.DEBIAN_HANDWRITING_FONTS)


class ExamAnswerTests(SimpleTestCase):
    def test_distinct_and_reproducible(self):
        first = hme_synth.exam_answers(200, np.random.default_rng(3))
        again = hme_synth.exam_answers(200, np.random.default_rng(3))
        self.assertEqual(first, again)
        self.assertEqual(len(set(first)), 200)

    def test_answers_use_only_symbols_crohme_has(self):
        from plom_clustering_plugin.training.hme_tokens import symbol_set

        allowed = set("0123456789xy+-=()") | {r"\frac", r"\sqrt"}
        for text in hme_synth.exam_answers(100, np.random.default_rng(0)):
            self.assertLessEqual(symbol_set(text), allowed, text)


class LoneSymbolTests(SimpleTestCase):
    def test_glyphs_that_can_stand_alone_one_spelling_each(self):
        latexes = [
            r"a + b",
            r"a - \alpha",
            r"\frac{a}{b} = x",
            r"x \to y",
            r"x \rightarrow y",
            r"a . b",
        ]
        symbols = hme_synth.lone_symbols(latexes, 1)
        self.assertLessEqual({"a", "b", "x", "y", "+", "=", r"\alpha"}, set(symbols))
        for never in (r"\frac", "{", "}", ".", "-"):
            self.assertNotIn(never, symbols)
        # Two spellings of one arrow would be two answers pushed apart in training.
        self.assertEqual(len({r"\to", r"\rightarrow"} & set(symbols)), 1)
        self.assertEqual(len(symbols), len(set(symbols)))

    def test_rare_glyphs_are_left_out(self):
        symbols = hme_synth.lone_symbols([r"a + b", r"a - c", r"a b"], 2)
        self.assertEqual(symbols, ["a", "b"])


class MathtextTests(SimpleTestCase):
    def test_crohme_spellings_become_mathtext(self):
        self.assertEqual(hme_synth.to_mathtext(r"a \lt b"), "$a < b$")
        self.assertEqual(hme_synth.to_mathtext(r"\sum\limits_{i}"), r"$\sum_{i}$")
        # A longer command that starts like an alias is left alone.
        self.assertEqual(hme_synth.to_mathtext(r"\ltimes"), r"$\ltimes$")


class TypesetterTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.typesetter = hme_synth.Typesetter([Path(f) for f in plom_fonts()[:2]])

    def test_draws_dark_ink_on_white(self):
        gray = self.typesetter.draw(r"\frac{x}{2} + 3", 0, np.random.default_rng(0))
        self.assertEqual(gray.dtype, np.uint8)
        self.assertEqual(gray[0, 0], 255)  # paper at the corner
        self.assertLess(gray.min(), 100)  # and ink somewhere
        self.assertGreater(gray.shape[1], gray.shape[0])  # a line of text

    def test_two_draws_of_one_expression_differ(self):
        rng = np.random.default_rng(1)
        first = self.typesetter.draw("2 x + 3", 0, rng)
        second = self.typesetter.draw("2 x + 3", 0, rng)
        self.assertFalse(first.shape == second.shape and np.array_equal(first, second))

    def test_unparsable_latex_is_a_value_error(self):
        with self.assertRaises(ValueError):
            self.typesetter.draw(r"\frac{x", 0, np.random.default_rng(0))


class RenderSyntheticTests(SimpleTestCase):
    def test_copies_per_expression_and_unparsable_ones_left_out(self):
        files = [Path(f) for f in plom_fonts()[:3]]
        latex = ["x = 4", r"\frac{x", "3 ( x - 1 )"]
        clean, scanned, rows = hme_synth.render_synthetic(latex, files, 2, (48, 192), 0)
        self.assertEqual(rows, ["x = 4", "x = 4", "3 ( x - 1 )", "3 ( x - 1 )"])
        self.assertEqual(clean.shape, (4, 48, 192))
        self.assertEqual(scanned.shape, clean.shape)
        self.assertEqual(clean.dtype, np.uint8)
        for canvas in (*clean, *scanned):
            self.assertGreater(int(canvas.max()), 100)  # every render has ink
        self.assertFalse(np.array_equal(clean, scanned))

    def test_nothing_typeset_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "no expression"):
            hme_synth.render_synthetic(
                [r"\frac{"], [Path(plom_fonts()[0])], 1, (48, 192), 0
            )


class PairBatchAnchorTests(SimpleTestCase):
    def test_only_the_given_rows_open_pairs(self):
        group = np.array([0, 0, 1, 1, 2, 2, 3, 3])
        anchors = np.array([0, 2, 4, 6])
        batches = hme_data.pair_batches(group, 2, np.random.default_rng(0), anchors)
        opened = np.concatenate([b[:2] for b in batches])
        self.assertEqual(sorted(opened.tolist()), anchors.tolist())
        for batch in batches:
            np.testing.assert_array_equal(group[batch[:2]], group[batch[2:]])


class FontLetterTests(SimpleTestCase):
    def test_every_character_in_every_font_with_its_class(self):
        files = [Path(f) for f in plom_fonts()[:2]]
        canvases, labels = letters_fonts.font_letters(files, 3, 0)
        self.assertEqual(canvases.shape, (2 * 12 * 3, 64, 64))
        self.assertEqual(canvases.dtype, np.uint8)
        counts = np.bincount(labels, minlength=len(LETTERS))
        # c and C share class C; every other character has a class of its own.
        self.assertEqual(counts[LETTERS.index("C")], 2 * 2 * 3)
        self.assertEqual(counts.sum() - counts[LETTERS.index("C")], 10 * 2 * 3)
        for canvas in canvases:
            self.assertGreater(int(canvas.max()), 100)

    def test_same_seed_same_draws(self):
        files = [Path(plom_fonts()[0])]
        first, _ = letters_fonts.font_letters(files, 2, 7)
        again, _ = letters_fonts.font_letters(files, 2, 7)
        other, _ = letters_fonts.font_letters(files, 2, 8)
        np.testing.assert_array_equal(first, again)
        self.assertFalse(np.array_equal(first, other))

    def test_capitals_only_fonts_give_no_lower_case(self):
        with tempfile.TemporaryDirectory() as tmp:
            name = sorted(fonts.CAPITALS_ONLY)[0]
            copy = Path(tmp) / name
            copy.write_bytes(Path(plom_fonts()[0]).read_bytes())
            _, labels = letters_fonts.font_letters([copy], 1, 0)
        self.assertEqual(
            sorted(LETTERS[i] for i in labels), ["A", "B", "C", "D", "E", "F"]
        )

    def test_draw_is_dark_ink_on_white(self):
        gray = letters_fonts.draw_letter(
            "b", Path(plom_fonts()[0]), np.random.default_rng(0)
        )
        self.assertEqual(gray.dtype, np.uint8)
        self.assertEqual(int(gray[0, 0]), 255)
        self.assertLess(int(gray.min()), 110)
