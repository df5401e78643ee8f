# SPDX-License-Identifier: AGPL-3.0-or-later
"""The multiple-choice letter model: mark selection, the ONNX contract, bins.

Answer boxes are generated here with Plom's own handwriting fonts; the model is the
default version in ``weights_manifest.json``: its committed file in ``weights/``
with its ``*.entry.json``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from unittest import skipUnless

import numpy as np
from django.test import SimpleTestCase
from PIL import Image, ImageDraw, ImageFont

from plom_clustering_plugin.ml.letters import (
    LETTERS,
    LetterEmbedder,
    choose_answer,
    find_marks,
    letter_canvas,
)
from plom_clustering_plugin.ml.manifest import get_entry, parse_manifest
from plom_clustering_plugin.ml.pipeline import ANSWERED, BLANK, LOW_CONFIDENCE, Pipeline
from plom_clustering_plugin.ml.preprocess import prepare

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "weights" / get_entry("mcq-letters").file
ENTRY = MODEL.with_suffix(".entry.json")
FONTS = sorted(
    p for p in Path(str(resources.files("plom.create") / "fonts")).glob("*.ttf")
)
BOX = (120, 400)  # height, width: an answer box at about 200 dpi


def font(index: int = 0, size: int = 70) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONTS[index % len(FONTS)]), size)


def page(printed: bool = True) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (BOX[1], BOX[0]), 240)
    draw = ImageDraw.Draw(img)
    if printed:
        draw.rectangle((3, 3, BOX[1] - 4, BOX[0] - 4), outline=20, width=2)
    return img, draw


def letter_box(
    char: str, *, at: int = 170, font_index: int = 0, extras=()
) -> np.ndarray:
    """A printed box with ``char`` written at x = ``at`` and optional clutter."""
    img, draw = page()
    draw.text((at, 15), char, fill=15, font=font(font_index))
    if "dot" in extras:
        draw.ellipse((330, 90, 337, 97), fill=15)
    if "crossed" in extras:  # a first attempt on the left, struck through
        draw.text((30, 15), "D" if char != "D" else "B", fill=15, font=font(font_index))
        draw.line((25, 20, 95, 100), fill=15, width=4)
        draw.line((25, 100, 95, 20), fill=15, width=4)
    if "circle" in extras:
        draw.ellipse((at - 30, 5, at + 90, 114), outline=15, width=4)
    if "second" in extras:  # a second, different answer, not crossed out
        draw.text(
            (290, 15), "B" if char != "B" else "A", fill=15, font=font(font_index)
        )
    return np.asarray(img, np.uint8)


def reference() -> np.ndarray:
    return np.asarray(page()[0], np.uint8)


def load_entry():
    raw = json.loads(ENTRY.read_text(encoding="utf-8"))
    return parse_manifest({"schema_version": 1, "models": [raw]}).models[0]


class MarkSelectionTest(SimpleTestCase):
    def prepared(self, *args, **kwargs):
        crop = prepare(letter_box(*args, **kwargs), reference())
        self.assertFalse(crop.is_blank)
        return crop

    def test_a_single_letter_is_one_mark(self):
        marks = find_marks(self.prepared("E").ink)
        self.assertEqual(len(marks), 1)

    def test_a_stray_dot_is_dropped(self):
        marks = find_marks(self.prepared("B", extras=("dot",)).ink)
        self.assertEqual(len(marks), 1)
        self.assertGreater(marks[0].ink.shape[0], 30)

    def test_a_crossed_out_attempt_is_a_separate_candidate(self):
        crop = self.prepared("B", extras=("crossed",))
        marks = find_marks(crop.ink)
        self.assertEqual(len(marks), 2)
        lefts = sorted(m.bbox[1] for m in marks)
        self.assertGreater(lefts[1] - lefts[0], 60)  # two places, not one merged mark

    def test_a_circle_around_the_answer_is_dropped(self):
        crop = self.prepared("A", extras=("circle",))
        marks = find_marks(crop.ink)
        self.assertEqual(len(marks), 1)
        height = marks[0].bbox[2] - marks[0].bbox[0]
        self.assertLess(height, crop.ink.shape[0] - 10)  # the letter, not the ring

    def test_broken_strokes_of_one_letter_stay_together(self):
        ink = np.zeros((80, 60), np.float32)
        ink[5:75, 5:10] = 1  # an E drawn as four separate strokes, 4-px gaps
        for top in (5, 37, 70):
            ink[top : top + 5, 14:50] = 1
        marks = find_marks(ink)
        self.assertEqual(len(marks), 1)
        self.assertEqual(marks[0].bbox, (5, 5, 75, 50))

    def test_a_leftover_printed_line_is_dropped(self):
        crop = prepare(letter_box("C"))  # no reference: the box lines stay
        marks = find_marks(crop.ink)
        self.assertEqual(len(marks), 1)
        self.assertLess(marks[0].ink.shape[1], 150)

    def test_the_canvas_keeps_the_aspect_ratio(self):
        canvas = letter_canvas(np.ones((40, 10), np.float32))
        cols = np.flatnonzero(canvas.any(axis=0))
        rows = np.flatnonzero(canvas.any(axis=1))
        self.assertEqual(canvas.shape, (64, 64))
        self.assertAlmostEqual((rows.size / cols.size), 4.0, delta=0.3)

    def test_choice_prefers_the_letter_like_mark_then_dilutes(self):
        p = np.eye(11)[[0, 1]]
        chosen = choose_answer(p, np.array([0.9, 0.05]), [500.0, 100.0])
        self.assertEqual(int(chosen.argmax()), 1)  # the smaller but letter-like mark
        self.assertAlmostEqual(chosen.sum(), 1.0)
        two = choose_answer(p, np.array([0.0, 0.0]), [500.0, 400.0])
        self.assertLess(two.max(), 0.35)  # two answers: goes to the unsure bin

    def test_blank_boxes_are_blank(self):
        rng = np.random.default_rng(0)
        for _ in range(20):
            noisy = reference().astype(np.float32) + rng.normal(0, 6, BOX)
            crop = prepare(np.clip(noisy, 0, 255).astype(np.uint8), reference())
            self.assertTrue(crop.is_blank)


@skipUnless(MODEL.exists() and ENTRY.exists(), f"no committed model at {MODEL}")
class LetterModelTest(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.entry = load_entry()
        cls.embedder = LetterEmbedder.from_file(cls.entry, MODEL)

    def test_onnx_contract(self):
        import onnxruntime as ort

        session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
        (model_input,) = session.get_inputs()
        self.assertEqual(model_input.name, "input")
        self.assertEqual(model_input.type, "tensor(float)")
        self.assertEqual(model_input.shape[1:], [1, 64, 64])
        outputs = [o.name for o in session.get_outputs()]
        self.assertEqual(outputs, ["probabilities", "reject"])
        batch = np.random.default_rng(0).random((5, 1, 64, 64), dtype=np.float32)
        p, r = session.run(None, {"input": batch})
        self.assertEqual(p.shape, (5, 11))
        self.assertEqual(r.shape, (5, 1))
        self.assertEqual(p.dtype, np.float32)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
        self.assertTrue(((r >= 0) & (r <= 1)).all())
        again, _ = session.run(None, {"input": batch})
        np.testing.assert_array_equal(p, again)
        single = np.concatenate(
            [session.run(None, {"input": b[None]})[0] for b in batch]
        )
        np.testing.assert_allclose(single, p, atol=1e-6)

    def test_entry_matches_the_file(self):
        from plom_clustering_plugin.ml.weights import sha256_of_file

        self.assertEqual(self.entry.sha256, sha256_of_file(MODEL))
        self.assertEqual(self.entry.size, MODEL.stat().st_size)
        self.assertEqual(self.entry.output.labels, LETTERS)
        self.assertLessEqual(self.entry.size, 10_000_000)
        self.assertTrue(0.3 < self.embedder.review_confidence < 1.0)

    def test_embedding_is_hellinger_deterministic_and_batch_independent(self):
        crops = [
            prepare(letter_box(c, font_index=i), reference())
            for i, c in enumerate("ABCDEF")
        ]
        crops.append(prepare(reference(), reference()))  # blank
        vectors = self.embedder.embed(crops)
        self.assertEqual(vectors.shape, (7, 11))
        self.assertEqual(vectors.dtype, np.float32)
        np.testing.assert_allclose((vectors[:6] ** 2).sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(vectors[6], 0)
        np.testing.assert_array_equal(vectors, self.embedder.embed(crops))
        one_by_one = np.concatenate([self.embedder.embed([c]) for c in crops])
        np.testing.assert_allclose(one_by_one, vectors, atol=1e-6)

    def test_font_letters_are_mostly_recognised(self):
        chars = "ABCDEFabcdef"
        right = total = 0
        for i in range(len(FONTS)):
            crops = [prepare(letter_box(c, font_index=i), reference()) for c in chars]
            guess = self.embedder.predict(crops).argmax(axis=1)
            expected = [LETTERS.index("C" if c == "c" else c) for c in chars]
            right += int((guess == np.array(expected)).sum())
            total += len(chars)
        # Fonts are not handwriting; this guards against a broken model or canvas.
        self.assertGreaterEqual(right / total, 0.8, f"{right}/{total}")

    def test_the_answer_is_found_among_clutter(self):
        for extras in (("dot",), ("crossed",), ("circle",), ("dot", "crossed")):
            crop = prepare(letter_box("B", extras=extras), reference())
            p = self.embedder.predict([crop])[0]
            self.assertEqual(LETTERS[int(p.argmax())], "B", extras)

    def test_bins_blank_never_mixed_and_unsure_used(self):
        pipeline = Pipeline(
            self.embedder,
            reference=reference(),
            review_confidence=self.embedder.review_confidence,
        )
        for i, char in enumerate("AABBCCDDEE"):
            pipeline.add(f"w{i}", letter_box(char, font_index=i))
        for i in range(4):
            pipeline.add(f"blank{i}", reference())
        pipeline.add("two-answers", letter_box("A", at=60, extras=("second",)))
        result = pipeline.finish()
        states = {a.key: a for a in result.answers}
        for i in range(4):
            self.assertEqual(states[f"blank{i}"].state, BLANK)
            self.assertIsNone(states[f"blank{i}"].group)
        written = [a for a in result.answers if not str(a.key).startswith("blank")]
        self.assertTrue(all(a.state in (ANSWERED, LOW_CONFIDENCE) for a in written))
        self.assertEqual(states["two-answers"].state, LOW_CONFIDENCE)
        names = {g.name for g in result.groups}
        self.assertTrue(names <= set(LETTERS) | {"other"}, names)
