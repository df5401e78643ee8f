# SPDX-License-Identifier: AGPL-3.0-or-later
"""The handwritten-math (HME) model: tokens, preprocessing, the ONNX contract, auto k.

Expressions are drawn here with Plom's own handwriting fonts; the model is the default version in ``weights_manifest.json``: its committed file in ``weights/``
with its ``*.entry.json``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from unittest import skipUnless

import numpy as np
from django.test import SimpleTestCase
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from sklearn.metrics import adjusted_rand_score

from plom_clustering_plugin.ml.clustering import cluster_embeddings
from plom_clustering_plugin.ml.manifest import get_entry
from plom_clustering_plugin.ml.preprocess import fit_to_canvas, prepare
from plom_clustering_plugin.training.hme_tokens import (
    build_vocabulary,
    canonical,
    multi_hot,
    symbol_counts,
    tokens,
)

REPO = Path(__file__).resolve().parent.parent
ONNX = REPO / "weights" / get_entry("hme-symbols").file
ENTRY = ONNX.with_suffix(".entry.json")
HAVE_MODEL = ONNX.exists() and ENTRY.exists()
FONTS = sorted(
    str(p)
    for p in resources.files("plom.create.fonts").iterdir()
    if p.name.endswith(".ttf")
)
#: Expressions as (base text, superscript or ""), drawn side by side.
EXPRESSIONS = [("x+1=5", ""), ("3y-2", "2"), ("(a+b)", "3"), ("7/4<9", "")]


def render_expression(
    text: str, superscript: str, font_path: str, rng: np.random.Generator
) -> np.ndarray:
    """A grey uint8 image (black ink on white) of ``text`` with an optional exponent.

    Each call is a different "writer": size, slant, stroke width and position vary.
    """
    size = int(rng.integers(40, 56))
    font = ImageFont.truetype(font_path, size)
    small = ImageFont.truetype(font_path, int(size * 0.6))
    image = Image.new("L", (420, 140), 255)
    draw = ImageDraw.Draw(image)
    x0, y0 = int(rng.integers(10, 40)), int(rng.integers(30, 50))
    draw.text((x0, y0), text, font=font, fill=0)
    if superscript:
        right = draw.textbbox((x0, y0), text, font=font)[2]
        draw.text((right + 3, y0 - size * 0.35), superscript, font=small, fill=0)
    ink = 1.0 - np.asarray(image, np.float32) / 255
    shear = rng.uniform(-0.15, 0.15)
    ink = ndimage.affine_transform(ink, [[1, 0], [shear, 1]], offset=[0, -shear * 70])
    if rng.random() < 0.5:
        ink = ndimage.grey_dilation(ink, size=(2, 2))
    return np.round(255 * (1 - np.clip(ink, 0, 1))).astype(np.uint8)


class TokenTests(SimpleTestCase):
    def test_commands_aliases_and_structure(self):
        self.assertEqual(
            tokens(r"\frac{a}{b} \lt x^{2}"), [r"\frac", "a", "b", "<", "x", "2"]
        )
        self.assertEqual(tokens(r"x \to 0"), ["x", r"\rightarrow", "0"])
        self.assertEqual(tokens(r"\{ 1 \}"), ["brace{", "1", "brace}"])
        self.assertEqual(tokens(r"\left( x \right)"), ["(", "x", ")"])

    def test_vocabulary_and_multi_hot(self):
        latex = ["x + 1", "x - 1", "x = y", "2 x"]
        vocabulary = build_vocabulary(latex, min_images=2)
        self.assertEqual(vocabulary, ["1", "x"])
        self.assertEqual(multi_hot("y + x", vocabulary), [1])

    def test_symbol_counts_count_glyphs_not_layout(self):
        vocabulary = ["1", "x", r"\times"]
        latex = r"x _ { 1 } \times x ^ { 1 } \times x"
        self.assertEqual(symbol_counts(latex, vocabulary), {0: 2, 1: 3, 2: 2})
        # Classes outside the vocabulary and braces, ^ and _ count for nothing.
        self.assertEqual(symbol_counts(r"\{ y ^ { 2 } \}", vocabulary), {})

    def test_canonical_ignores_spacing_only(self):
        self.assertEqual(canonical("x^{2}"), canonical("x ^ { 2 }"))
        self.assertNotEqual(canonical("x^{2}"), canonical("x_{2}"))


class PreprocessTests(SimpleTestCase):
    def test_rendered_expression_is_cut_to_its_ink(self):
        rng = np.random.default_rng(0)
        gray = render_expression("x+1=5", "2", FONTS[0], rng)
        crop = prepare(gray)
        self.assertFalse(crop.is_blank)
        height, width = crop.ink.shape
        self.assertLess(height, gray.shape[0])
        self.assertGreater(width, height)  # a line of math is wide
        canvas = fit_to_canvas(crop.ink, 96, 384)
        self.assertEqual(canvas.shape, (96, 384))
        self.assertGreater(canvas.max(), 0.5)

    def test_blank_paper_is_blank(self):
        self.assertTrue(prepare(np.full((140, 420), 250, np.uint8)).is_blank)


@skipUnless(HAVE_MODEL, "the default hme-symbols weights are not in this checkout")
class OnnxEmbedderTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from plom_clustering_plugin.ml.hme import HmeEmbedder

        cls.embedder = HmeEmbedder.from_files(ONNX, ENTRY, threads=2)
        rng = np.random.default_rng(1)
        cls.truth, images = [], []
        for label, (text, sup) in enumerate(EXPRESSIONS):
            for font in FONTS:
                images.append(render_expression(text, sup, font, rng))
                cls.truth.append(label)
        cls.crops = [prepare(image) for image in images]

    def test_contract(self):
        embedder = self.embedder
        self.assertEqual(embedder.name, "hme-symbols")
        self.assertIsNone(embedder.class_names)
        self.assertEqual(len(embedder.sha256), 64)
        self.assertLess(
            embedder.same_answer_distance, embedder.different_answer_distance
        )
        vectors = embedder.embed(self.crops[:5])
        self.assertEqual(vectors.dtype, np.float32)
        self.assertEqual(vectors.ndim, 2)
        self.assertEqual(len(vectors), 5)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    def test_deterministic_and_batch_independent(self):
        batch = self.embedder.embed(self.crops[:6])
        again = self.embedder.embed(self.crops[:6])
        one_by_one = np.concatenate([self.embedder.embed([c]) for c in self.crops[:6]])
        np.testing.assert_array_equal(batch, again)
        np.testing.assert_allclose(batch, one_by_one, atol=1e-5)

    def test_blank_crop_gives_zero_row(self):
        blank = prepare(np.full((140, 420), 255, np.uint8))
        vectors = self.embedder.embed([blank, self.crops[0]])
        self.assertEqual(float(np.abs(vectors[0]).sum()), 0.0)
        self.assertAlmostEqual(float(np.linalg.norm(vectors[1])), 1.0, places=5)

    def test_same_expression_is_closer_than_different(self):
        vectors = self.embedder.embed(self.crops).astype(np.float64)
        truth = np.array(self.truth)
        distance = 1 - vectors @ vectors.T
        same = distance[
            (truth[:, None] == truth[None, :]) & ~np.eye(len(truth), dtype=bool)
        ]
        different = distance[truth[:, None] != truth[None, :]]
        self.assertLess(np.median(same), np.median(different))

    def test_automatic_k_groups_fonts_of_one_expression(self):
        vectors = self.embedder.embed(self.crops)
        found = cluster_embeddings(
            vectors,
            same_answer_distance=self.embedder.same_answer_distance,
            different_answer_distance=self.embedder.different_answer_distance,
        )
        ari = adjusted_rand_score(self.truth, found.labels)
        # Fonts are not handwriting the model saw: ask for clearly better than chance.
        self.assertGreater(ari, 0.3, f"ARI {ari:.2f}, k found {found.k}")
        self.assertLess(found.k, len(self.truth) // 2)


class ReviewThresholdTest(SimpleTestCase):
    """The review bin is sized by how often its answers are misplaced."""

    def answers(self, rng, misread: int):
        """Five expressions, 12 writings each; ``misread`` writings sit between two."""
        centres = np.eye(5, 16) * 3
        vectors, latex = [], []
        for e in range(5):
            for i in range(12):
                point = centres[e] + rng.normal(0, 0.15, 16)
                if i < misread:  # written so that it looks more like the next one
                    point = 0.42 * centres[e] + 0.58 * centres[(e + 1) % 5]
                    point = point + rng.normal(0, 0.05, 16)
                vectors.append(point / np.linalg.norm(point))
                latex.append(f"x+{e}")
        return np.asarray(vectors), latex

    def test_clean_groups_need_no_review_bin(self):
        from plom_clustering_plugin.training.hme_validate import review_threshold

        vectors, latex = self.answers(np.random.default_rng(0), misread=0)
        self.assertEqual(review_threshold(vectors, latex, 0.01, 0.4, count=3), 0.0)

    def test_ambiguous_writings_fall_below_the_threshold(self):
        from plom_clustering_plugin.ml.clustering import cluster_embeddings
        from plom_clustering_plugin.training.hme_validate import review_threshold

        vectors, latex = self.answers(np.random.default_rng(1), misread=1)
        threshold = review_threshold(vectors, latex, 0.01, 0.6, count=3, share=0.2)
        self.assertGreater(threshold, 0.0)
        found = cluster_embeddings(
            vectors, same_answer_distance=0.01, different_answer_distance=0.6
        )
        binned = np.flatnonzero(found.confidence < threshold)
        ambiguous = {e * 12 for e in range(5)}
        self.assertTrue(binned.size)
        # The bin catches the misread writings and few others.
        self.assertGreaterEqual(len(set(binned.tolist()) & ambiguous), 3)
        self.assertLessEqual(len(set(binned.tolist()) - ambiguous), 2)


class CalibrationPlateauTest(SimpleTestCase):
    """Distances are taken from the middle of the best settings, not the first."""

    def test_middle_of_a_plateau_of_ties(self):
        from plom_clustering_plugin.training.hme_validate import _plateau_middle

        results = [
            (score, same, different, {"ari": score})
            for same, different, score in [
                (0.01, 0.3, 0.80),
                (0.01, 0.4, 1.0),
                (0.01, 0.5, 1.0),
                (0.01, 0.6, 1.0),
                (0.01, 0.7, 0.95),
            ]
        ]
        chosen = _plateau_middle(results)
        self.assertEqual(chosen["different_answer_distance"], 0.5)
        self.assertEqual(chosen["tied_settings"], 3)

    def test_a_single_best_setting_wins_alone(self):
        from plom_clustering_plugin.training.hme_validate import _plateau_middle

        results = [(0.9, 0.01, 0.3, {}), (0.97, 0.02, 0.6, {}), (0.5, 0.01, 0.7, {})]
        chosen = _plateau_middle(results)
        self.assertEqual(
            (chosen["same_answer_distance"], chosen["different_answer_distance"]),
            (0.02, 0.6),
        )
        self.assertEqual(chosen["tied_settings"], 1)

    def test_calibrating_well_separated_answers_picks_a_plateau_middle(self):
        from plom_clustering_plugin.training.hme_validate import (
            DIFFERENT_GRID,
            calibrate,
        )

        rng = np.random.default_rng(0)
        centres = np.eye(6, 24) * 3
        vectors, latex = [], []
        for e in range(6):
            for _ in range(10):
                point = centres[e] + rng.normal(0, 0.05, 24)
                vectors.append(point / np.linalg.norm(point))
                latex.append(f"y-{e}")
        chosen = calibrate(np.asarray(vectors), latex, count=3)
        # Every setting separates these perfectly: the middle one, not the first.
        self.assertGreater(chosen["tied_settings"], 1)
        self.assertGreater(chosen["different_answer_distance"], DIFFERENT_GRID[0])
