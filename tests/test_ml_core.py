# SPDX-License-Identifier: AGPL-3.0-or-later
"""The Django-free core on generated data: preprocessing, automatic k, bins."""

from __future__ import annotations

import numpy as np
from django.test import SimpleTestCase
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.metrics import adjusted_rand_score

from plom_clustering_plugin.ml.clustering import (
    ClassClusterer,
    choose_labels,
    cluster_embeddings,
    regroup_smaller_groups,
)
from plom_clustering_plugin.ml.embedders import PixelEmbedder, l2_normalise
from plom_clustering_plugin.ml.pipeline import (
    ANSWERED,
    BLANK,
    LOW_CONFIDENCE,
    NOT_SCANNED,
    OTHER,
    Pipeline,
)
from plom_clustering_plugin.ml.preprocess import (
    INK_FLOOR,
    PAPER_PERCENTILE,
    fit_to_canvas,
    ink_level,
    paper_level,
    prepare,
    remove_specks,
    to_gray,
)


def answer_box(
    *, printed=True, mark=None, shift=(0, 0), noise=0.0, seed=0, pen=10, width=6
):
    """A 120x400 scan-like crop: a printed box and "Answer:" bar, plus a drawn mark.

    ``pen`` is the mark's grey level (paper is 238) and ``width`` its stroke width.
    """
    img = Image.new("L", (400, 120), 238)  # greyish paper, as scanners give
    draw = ImageDraw.Draw(img)
    if printed:
        draw.rectangle((2, 2, 397, 117), outline=30, width=2)
        draw.rectangle((10, 10, 80, 22), fill=40)  # stands for the "Answer:" label
    if mark == "circle":
        draw.ellipse(
            (150 + shift[0], 30 + shift[1], 230 + shift[0], 100 + shift[1]),
            outline=pen,
            width=width,
        )
    elif mark == "cross":
        x, y = 160 + shift[0], 30 + shift[1]
        draw.line((x, y, x + 70, y + 70), fill=pen, width=width)
        draw.line((x, y + 70, x + 70, y), fill=pen, width=width)
    elif mark == "bar":
        draw.rectangle(
            (120 + shift[0], 55 + shift[1], 300 + shift[0], 68 + shift[1]), fill=pen
        )
    array = np.asarray(img, dtype=np.float32)
    if noise:
        array = array + np.random.default_rng(seed).normal(0, noise, array.shape)
    return np.clip(array, 0, 255).astype(np.uint8)


#: Crop shapes down to one pixel, where the percentile's two ranks coincide.
SHAPES = [(1, 1), (1, 2), (2, 3), (7, 5), (50, 3), (120, 400)]


class PreprocessTest(SimpleTestCase):
    def test_printed_template_is_removed_and_an_empty_box_is_blank(self):
        reference = answer_box()
        self.assertTrue(prepare(answer_box(noise=6), reference).is_blank)
        # Without the reference the printed ink counts as writing.
        self.assertFalse(prepare(answer_box(), None).is_blank)

    def test_scan_dust_is_not_an_answer(self):
        crop = answer_box()
        crop[50:53, 200:203] = 0  # a 9-pixel speck
        self.assertTrue(prepare(crop, answer_box()).is_blank)

    def test_specks_near_writing_are_kept_only_within_reach(self):
        ink = np.zeros((60, 200), np.float32)
        ink[20:40, 20:24] = 1.0  # the stem of an i: writing
        ink[12:14, 21:23] = 1.0  # its dot, 6 px above
        ink[30:32, 150:152] = 1.0  # dust far from writing
        kept = remove_specks(ink, reach=10)
        self.assertTrue(kept[12:14, 21:23].all())
        self.assertFalse(kept[30:32, 150:152].any())
        self.assertTrue(kept[20:40, 20:24].all())
        # Out of reach, or with no reach at all, the dot goes with the dust.
        self.assertFalse(remove_specks(ink, reach=5)[12:14, 21:23].any())
        self.assertFalse(remove_specks(ink, reach=0)[12:14, 21:23].any())
        # With no writing at all, nothing is near: every speck goes.
        lone = np.zeros_like(ink)
        lone[12:14, 21:23] = 1.0
        self.assertFalse(remove_specks(lone, reach=50).any())

    def test_a_mark_is_kept_and_cut_to_its_box(self):
        prepared = prepare(answer_box(mark="circle"), answer_box())
        self.assertFalse(prepared.is_blank)
        top, left, bottom, right = prepared.bbox
        self.assertTrue(145 <= left <= 150 and 230 <= right <= 236, prepared.bbox)
        self.assertEqual(prepared.ink.shape, (bottom - top, right - left))
        self.assertGreater(prepared.ink.max(), 0.9)

    def test_faint_writing_is_read_at_a_lower_floor(self):
        # A 2-px circle at grey 200 on paper 238 reads 0.16 ink: under INK_FLOOR.
        faint = answer_box(mark="circle", pen=200, width=2, noise=3)
        self.assertLess(ink_level(faint)[30:101, 150:231].max(), INK_FLOOR)
        prepared = prepare(faint, answer_box())
        self.assertFalse(prepared.is_blank)
        top, left, bottom, right = prepared.bbox
        self.assertTrue(145 <= left <= 150 and 230 <= right <= 236, prepared.bbox)
        # Ink below the faint floor is still paper.
        paler = answer_box(mark="circle", pen=215, width=2, noise=3)
        self.assertTrue(prepare(paler, answer_box()).is_blank)

    def test_faint_writing_beside_a_dark_mark_is_read_at_the_lower_floor(self):
        # The faint circle of the test above, and a short dark bar that alone survives
        # INK_FLOOR: most of the crop's ink would be lost with the circle.
        crop = answer_box(mark="circle", pen=200, width=2, noise=3)
        crop[60:64, 300:316] = 10
        prepared = prepare(crop, answer_box())
        top, left, bottom, right = prepared.bbox
        self.assertTrue(145 <= left <= 150 and 314 <= right <= 320, prepared.bbox)
        self.assertLess(prepared.ink[prepared.ink > 0].min(), INK_FLOOR)

    def test_crisp_writing_keeps_the_first_floor(self):
        # A dark pen keeps nearly all its ink at the first floor: the crop is not read
        # again, so no ink under that floor comes in.
        prepared = prepare(answer_box(mark="cross", width=3, noise=3), answer_box())
        self.assertFalse(prepared.is_blank)
        self.assertGreaterEqual(prepared.ink[prepared.ink > 0].min(), INK_FLOOR)

    def test_a_misaligned_blurred_box_with_dust_stays_blank(self):
        # The box printed 2 px off and blurred, as after alignment and scanning: its
        # faint halo reaches past the first pass's template margin.
        crop = np.roll(answer_box(), (2, 2), axis=(0, 1)).astype(np.float32)
        crop[50:52, 200:202] = 0  # a dust speck, blurred below into a larger one
        crop = ndimage.gaussian_filter(crop, 0.9)
        crop = np.clip(crop + np.random.default_rng(0).normal(0, 4, crop.shape), 0, 255)
        self.assertTrue(prepare(crop.astype(np.uint8), answer_box()).is_blank)

    def test_a_reference_of_another_size_is_resized(self):
        reference = np.asarray(Image.fromarray(answer_box()).resize((398, 119)))
        self.assertTrue(prepare(answer_box(), reference).is_blank)

    def test_the_counted_paper_level_is_numpys_percentile(self):
        rng = np.random.default_rng(0)
        crops = [
            answer_box(mark=m, noise=n) for m in ("cross", "circle") for n in (0, 6)
        ]
        crops += [rng.integers(0, 256, shape, dtype=np.uint8) for shape in SHAPES]
        crops.append(np.full((3, 4), 200, np.uint8))
        for crop in crops:
            gray = to_gray(crop)
            expected = float(np.percentile(gray, PAPER_PERCENTILE))
            self.assertAlmostEqual(paper_level(crop, gray), expected, places=6)
        # Not grey uint8: numpy's percentile itself, exactly.
        rgb = np.stack([answer_box(mark="cross")] * 3, axis=2)
        gray = to_gray(rgb)
        self.assertEqual(paper_level(rgb, gray), float(np.percentile(gray, 90)))

    def test_rgb_rgba_and_bad_shapes(self):
        rgb = np.stack([answer_box(mark="cross")] * 3, axis=2)
        rgba = np.concatenate(
            [rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2
        )
        self.assertFalse(prepare(rgb, answer_box()).is_blank)
        self.assertFalse(prepare(rgba, answer_box()).is_blank)
        with self.assertRaisesMessage(ValueError, "expected a 2-D or 3-D image"):
            prepare(np.zeros((2, 2, 2, 2), np.uint8))
        with self.assertRaisesMessage(ValueError, "empty crop"):
            prepare(np.zeros((0, 5), np.uint8))


def blobs(centres, per_cluster, spread, seed=0, dim=32):
    """Unit vectors scattered around the given unit centres."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for i, centre in enumerate(centres):
        for _ in range(
            per_cluster[i] if isinstance(per_cluster, list) else per_cluster
        ):
            rows.append(centre + rng.normal(0, spread, dim))
            truth.append(i)
    return l2_normalise(np.array(rows)), np.array(truth)


def random_centres(k, seed=1, dim=32):
    return l2_normalise(np.random.default_rng(seed).normal(size=(k, dim)))


class FitToCanvasTest(SimpleTestCase):
    def test_matches_pillow_bilinear_resize_up_and_down(self):
        # Models were trained on canvases made with Pillow: the matrix resize must
        # give the same pixels, shrinking (antialiased) and enlarging alike.
        rng = np.random.default_rng(3)
        for h, w, height, width in [
            (90, 37, 56, 56),
            (5, 40, 64, 256),
            (300, 700, 96, 384),
        ]:
            ink = rng.random((h, w)).astype(np.float32)
            scale = min(height / h, width / w)
            new_h = max(1, min(height, round(h * scale)))
            new_w = max(1, min(width, round(w * scale)))
            pillow = np.asarray(
                Image.fromarray(ink, mode="F").resize((new_w, new_h), Image.BILINEAR)
            )
            canvas = fit_to_canvas(ink, height, width)
            top, left = (height - new_h) // 2, (width - new_w) // 2
            np.testing.assert_allclose(
                canvas[top : top + new_h, left : left + new_w], pillow, atol=1e-5
            )
            self.assertEqual(
                canvas.sum(), canvas[top : top + new_h, left : left + new_w].sum()
            )

    def test_same_bits_whatever_the_blas_thread_count(self):
        # Answers at a cut height changed group with the BLAS thread layout.
        from threadpoolctl import threadpool_limits

        ink = np.random.default_rng(5).random((300, 1000)).astype(np.float32)
        canvases = set()
        for threads in (1, 2, 4):
            with threadpool_limits(threads, user_api="blas"):
                canvases.add(fit_to_canvas(ink, 96, 384).tobytes())
        self.assertEqual(len(canvases), 1)


class AutomaticKTest(SimpleTestCase):
    def assertSamePartition(self, labels, truth):
        pairs = {(int(a), int(b)) for a, b in zip(labels, truth, strict=True)}
        self.assertEqual(len(pairs), len(set(truth.tolist())), pairs)
        self.assertEqual(len(pairs), len(set(labels.tolist())), pairs)

    def test_finds_the_number_of_well_separated_groups(self):
        for k in (2, 3, 5, 8):
            with self.subTest(k=k):
                vectors, truth = blobs(random_centres(k, seed=k), 12, 0.04, seed=k)
                result = cluster_embeddings(vectors)
                self.assertEqual(result.k, k)
                self.assertSamePartition(result.labels, truth)

    def test_everyone_writing_the_same_answer_is_one_group(self):
        vectors, _ = blobs(random_centres(1), 30, 0.01)
        result = cluster_embeddings(vectors, same_answer_distance=0.08)
        self.assertEqual(result.k, 1)
        self.assertTrue(np.all(result.confidence == 1.0))

    def test_tiny_questions(self):
        self.assertEqual(cluster_embeddings(np.zeros((0, 4))).k, 0)
        self.assertEqual(cluster_embeddings(random_centres(1)).k, 1)
        self.assertEqual(cluster_embeddings(random_centres(2)).k, 2)
        same, _ = blobs(random_centres(1), 2, 0.001)
        self.assertEqual(cluster_embeddings(same).k, 1)

    def test_all_different_answers_stay_apart(self):
        result = cluster_embeddings(random_centres(6, seed=4))
        self.assertEqual(result.k, 6)

    def test_labels_are_ordered_largest_first(self):
        vectors, _ = blobs(random_centres(3, seed=7), [3, 10, 6], 0.03, seed=2)
        result = cluster_embeddings(vectors)
        sizes = np.bincount(result.labels)
        self.assertEqual(sizes.tolist(), [10, 6, 3])

    def test_one_off_answers_do_not_join_a_big_group(self):
        centres = random_centres(6, seed=9)
        common, _ = blobs(centres[:3], [20, 10, 6], 0.03, seed=3)
        one_offs = centres[3:]
        result = cluster_embeddings(np.vstack([common, one_offs]))
        sizes = np.bincount(result.labels)
        self.assertEqual(sorted(sizes.tolist(), reverse=True), [20, 10, 6, 1, 1, 1])


def many_answer_question(seed: int, groups: int = 40, dim: int = 32):
    """Many answers of 2-13 writings each, in families of look-alikes, varied spreads.

    Like a 500-answer question: some answers lie closer to a look-alike than the
    writings of another answer lie to each other.
    """
    rng = np.random.default_rng(seed)
    families = l2_normalise(rng.normal(size=(10, dim)))
    centres = l2_normalise(
        families[rng.integers(0, 10, groups)] + rng.normal(0, 0.15, (groups, dim))
    )
    sizes = rng.integers(2, 14, groups)
    spreads = rng.uniform(0.03, 0.11, groups)
    rows = [
        l2_normalise(centre + rng.normal(0, spread, (size, dim)))
        for centre, spread, size in zip(centres, spreads, sizes, strict=True)
    ]
    return np.vstack(rows), np.repeat(np.arange(groups), sizes)


class RegroupTest(SimpleTestCase):
    def test_many_groups_are_shared_out_better_than_one_cut_does(self):
        for seed in range(4):
            with self.subTest(seed=seed):
                vectors, truth = many_answer_question(seed)
                cut, _ = choose_labels(vectors, 0.04, 0.5)
                result = cluster_embeddings(
                    vectors, same_answer_distance=0.04, different_answer_distance=0.5
                )
                self.assertEqual(result.k, len(set(cut.tolist())))
                self.assertGreater(
                    adjusted_rand_score(truth, result.labels),
                    adjusted_rand_score(truth, cut),
                )

    def test_a_big_answer_written_two_ways_is_not_split(self):
        rng = np.random.default_rng(3)
        centres = l2_normalise(rng.normal(size=(5, 32)))
        ways = l2_normalise(centres[[0, 0]] + [[0.5], [-0.5]] * centres[[1, 1]])
        alike = l2_normalise(centres[3:4] + 0.3 * centres[4:5])[0]
        parts = [ways[0]] * 30 + [ways[1]] * 30
        parts += [centres[2]] * 4 + [centres[3]] * 4 + [alike] * 4
        vectors = l2_normalise(np.vstack(parts) + rng.normal(0, 0.02, (72, 32)))
        labels = np.repeat([0, 1, 2, 3], [60, 4, 4, 4])
        # Ward alone would split the big answer and merge the two alike small ones.
        ward = fcluster(linkage(vectors, "ward"), t=4, criterion="maxclust")
        self.assertEqual(len(set(ward[:60].tolist())), 2)
        regrouped = regroup_smaller_groups(vectors, labels)
        self.assertEqual(adjusted_rand_score(labels, regrouped), 1.0)

    def test_one_offs_and_a_lone_group_are_left_alone(self):
        labels = np.array([0, 0, 0, 1, 2, 3])
        vectors = random_centres(6, seed=1)
        self.assertIs(regroup_smaller_groups(vectors, labels), labels)


class ClassClustererTest(SimpleTestCase):
    def test_groups_by_most_probable_class_with_names(self):
        p = np.array(
            [[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.85, 0.05], [0.45, 0.4, 0.15]]
        )
        result = ClassClusterer(["A", "B", "C"]).cluster(np.sqrt(p))
        self.assertEqual(result.labels.tolist(), [0, 0, 1, 0])
        self.assertEqual(result.names, {0: "A", 1: "B"})
        np.testing.assert_allclose(result.confidence, [0.9, 0.8, 0.85, 0.45])
        self.assertEqual(result.runner_up.tolist(), [1, 1, 0, 1])


class PixelEmbedderTest(SimpleTestCase):
    def test_shape_norm_and_blank_rows(self):
        reference = answer_box()
        crops = [
            prepare(answer_box(mark=m, noise=5, seed=i), reference)
            for i, m in enumerate(["circle", None, "cross"])
        ]
        vectors = PixelEmbedder().embed(crops)
        self.assertEqual(vectors.shape, (3, 32 * 96))
        self.assertEqual(vectors.dtype, np.float32)
        np.testing.assert_allclose(
            np.linalg.norm(vectors[[0, 2]], axis=1), 1, rtol=1e-5
        )
        self.assertEqual(np.abs(vectors[1]).sum(), 0)


class PipelineTest(SimpleTestCase):
    def run_pipeline(self, marks, **kwargs):
        reference = answer_box()
        pipeline = Pipeline(PixelEmbedder(), reference=reference, **kwargs)
        for i, mark in enumerate(marks):
            shift = (i % 5 - 2, i % 3 - 1)
            pipeline.add(i, answer_box(mark=mark, shift=shift, noise=5, seed=i))
        return pipeline

    def test_groups_blanks_and_problems(self):
        marks = ["circle", "cross", "bar"] * 6 + [None, None]
        pipeline = self.run_pipeline(marks)
        pipeline.add_problem("p99", NOT_SCANNED, "not scanned")
        result = pipeline.finish()
        states = {a.key: a.state for a in result.answers}
        self.assertEqual(states[18], BLANK)
        self.assertEqual(states["p99"], NOT_SCANNED)
        groups = {}
        for answer in result.answers:
            if answer.state == ANSWERED:
                groups.setdefault(answer.group, set()).add(marks[answer.key])
        self.assertEqual(len(groups), 3)
        self.assertTrue(all(len(kinds) == 1 for kinds in groups.values()), groups)
        self.assertEqual(sum(g.size for g in result.groups), 18)

    def test_lone_answers_go_to_other_and_doubtful_ones_to_review(self):
        marks = ["circle"] * 8 + ["cross"]
        result = self.run_pipeline(marks).finish()
        kinds = [g.kind for g in result.groups]
        self.assertEqual(kinds[-1], OTHER)
        result = self.run_pipeline(marks, review_confidence=1.01).finish()
        self.assertTrue(any(a.state == LOW_CONFIDENCE for a in result.answers))
        for answer in result.answers:
            if answer.state == LOW_CONFIDENCE:
                self.assertIsNotNone(answer.group)

    def test_progress_is_reported_per_stage(self):
        seen = []
        pipeline = self.run_pipeline(
            ["circle", "cross"] * 3, batch_size=4, progress=lambda *a: seen.append(a)
        )
        pipeline.finish()
        self.assertIn(("embedding", 4, 6), seen)
        self.assertIn(("embedding", 6, 6), seen)
        self.assertEqual(seen[-1], ("clustering", 1, 1))

    def test_crops_keep_the_specks_their_embedder_was_trained_with(self):
        crop = np.full((60, 120), 255, np.uint8)
        crop[30:33, 40:44] = 0  # a 12-pixel stroke: writing, but under the blank floor
        crop[25:27, 41:43] = 0  # and a 4-pixel dot above it
        states = {}
        for reach in (0, 10):
            embedder = PixelEmbedder()
            embedder.dot_reach = reach
            pipeline = Pipeline(embedder)
            pipeline.add("a", crop)
            pipeline.add("b", crop)
            states[reach] = {answer.state for answer in pipeline.finish().answers}
        self.assertEqual(states, {0: {BLANK}, 10: {ANSWERED}})

    def test_unknown_problem_state_is_refused(self):
        with self.assertRaisesMessage(ValueError, "unknown problem state"):
            Pipeline(PixelEmbedder()).add_problem(1, "lost", "?")
