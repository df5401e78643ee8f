# SPDX-License-Identifier: AGPL-3.0-or-later
"""Hard batches for the HME contrastive loss: neighbours by the net's embedding."""

from __future__ import annotations

import importlib.util
import io
from contextlib import redirect_stderr
from unittest import skipIf

import numpy as np
from django.test import SimpleTestCase

from plom_clustering_plugin.training import hme_hard

NO_TORCH = importlib.util.find_spec("torch") is None


def blobs(count: int, size: int, dim: int = 16, seed: int = 0):
    """``count`` tight, well-separated groups of ``size`` unit vectors, shuffled."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:count]
    blob = np.repeat(np.arange(count), size)
    vectors = centres[blob] + rng.normal(scale=0.02, size=(len(blob), dim))
    order = rng.permutation(len(blob))
    return vectors[order], blob[order]


class NearestGroupTests(SimpleTestCase):
    def test_neighbours_share_a_group_and_no_row_is_used_twice(self):
        vectors, blob = blobs(count=5, size=6)
        groups = hme_hard.nearest_groups(vectors, 6, np.random.default_rng(1))
        self.assertEqual(len(groups), 5)
        used = np.concatenate(groups)
        self.assertEqual(len(set(used.tolist())), len(vectors))
        for members in groups:
            self.assertEqual(len(set(blob[members].tolist())), 1)

    def test_leftover_rows_short_of_a_group_are_dropped(self):
        vectors, _ = blobs(count=3, size=5)
        groups = hme_hard.nearest_groups(vectors, 4, np.random.default_rng(0))
        self.assertEqual([len(g) for g in groups], [4, 4, 4])
        self.assertEqual(len(set(np.concatenate(groups).tolist())), 12)

    def test_distinct_groups_take_one_row_per_expression_nearest_first(self):
        # A look-alike family of 6 expressions, one of them with 5 writings, and a
        # far family of 6 one-off expressions: the near family still fills a group.
        vectors, blob = blobs(count=2, size=10)
        keep = (
            np.flatnonzero(blob == 0).tolist() + np.flatnonzero(blob == 1)[:6].tolist()
        )
        vectors, blob = vectors[keep], blob[keep]
        expression = np.array([0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15])
        groups = hme_hard.nearest_groups(
            vectors, 6, np.random.default_rng(2), group=expression
        )
        for members in groups:
            self.assertEqual(len(set(expression[members].tolist())), 6)
        found = [sorted(expression[g].tolist()) for g in groups]
        self.assertIn([0, 1, 2, 3, 4, 5], found)

    def test_distinct_grouping_stops_when_too_few_expressions_are_free(self):
        vectors, _ = blobs(count=1, size=8)
        expression = np.array([0, 0, 0, 0, 1, 1, 2, 3])
        groups = hme_hard.nearest_groups(
            vectors, 4, np.random.default_rng(0), group=expression
        )
        self.assertEqual(len(groups), 1)
        self.assertEqual(sorted(expression[groups[0]].tolist()), [0, 1, 2, 3])


class MixedBatchTests(SimpleTestCase):
    def setUp(self):
        self.vectors, self.blob = blobs(count=4, size=8)
        # Two writings per expression; an expression never spans two blobs.
        self.group = np.arange(len(self.blob)) // 2
        order = np.lexsort((np.arange(len(self.blob)), self.blob))
        self.vectors, self.blob = self.vectors[order], self.blob[order]
        self.calls = []

    def embed(self, rows):
        self.calls.append(rows.copy())
        return self.vectors[rows]

    def batches(self, anchors, share, distinct=False):
        return hme_hard.mixed_batches(
            self.embed,
            self.group,
            anchors,
            4,
            share,
            np.random.default_rng(3),
            distinct=distinct,
        )

    def test_every_hard_batch_holds_one_look_alike_family(self):
        anchors = np.arange(len(self.group))
        batches = self.batches(anchors, 1.0)
        self.assertEqual(len(batches), len(anchors) // 4)
        for batch in batches:
            self.assertEqual(len(batch), 8)
            np.testing.assert_array_equal(self.group[batch[:4]], self.group[batch[4:]])
            self.assertEqual(len(set(self.blob[batch].tolist())), 1)
        opened = np.concatenate([b[:4] for b in batches])
        self.assertEqual(sorted(opened.tolist()), anchors.tolist())

    def test_the_net_embeds_each_distinct_hard_anchor_once(self):
        anchors = np.concatenate([np.arange(16), np.arange(8)])  # 8 rows boosted
        batches = self.batches(anchors, 0.5)
        self.assertEqual(len(self.calls), 1)
        rows = self.calls[0]
        self.assertEqual(len(rows), len(set(rows.tolist())))
        self.assertLessEqual(len(rows), 12)  # 12 hard anchors, some repeated
        opened = np.concatenate([b[:4] for b in batches])
        self.assertEqual(sorted(opened.tolist()), sorted(anchors.tolist()))

    def test_distinct_hard_batches_hold_one_anchor_per_expression(self):
        anchors = np.arange(len(self.group))
        batches = self.batches(anchors, 1.0, distinct=True)
        self.assertEqual(len(batches), len(anchors) // 4)
        for batch in batches:
            self.assertEqual(len(set(self.group[batch[:4]].tolist())), 4)
        # Every anchor opens a pair (here every hard anchor finds a hard batch).
        opened = np.concatenate([b[:4] for b in batches])
        self.assertEqual(sorted(opened.tolist()), anchors.tolist())
        hard_families = [len(set(self.blob[b].tolist())) for b in batches]
        self.assertEqual(hard_families.count(1), len(batches))

    def test_hard_anchors_no_distinct_batch_takes_join_random_batches(self):
        # Expression 0 opens 8 of the 16 pairs: at most one per hard batch, so at
        # least 4 of its turns are left over and must still open pairs.
        anchors = np.concatenate([np.zeros(8, np.int64), np.arange(2, 10)])
        batches = self.batches(anchors, 1.0, distinct=True)
        opened = np.concatenate([b[:4] for b in batches])
        self.assertEqual(sorted(opened.tolist()), sorted(anchors.tolist()))
        repeats = [len(set(self.group[b[:4]].tolist())) < 4 for b in batches]
        self.assertIn(True, repeats)  # a random batch took the leftovers

    def test_no_hard_share_never_calls_the_net(self):
        batches = self.batches(np.arange(len(self.group)), 0.0)
        self.assertEqual(self.calls, [])
        self.assertEqual(len(batches), len(self.group) // 4)
        families = [len(set(self.blob[b].tolist())) for b in batches]
        self.assertGreater(max(families), 1)  # random batches mix families


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class FromEpochTests(SimpleTestCase):
    """``--hard-from`` and ``--views-from`` count from 1; the training loop from 0."""

    def test_epochs_before_the_first_one_are_off(self):
        from plom_clustering_plugin.training.hme_train import reached

        on = [reached(epoch, 3) for epoch in range(5)]
        self.assertEqual(on, [False, False, True, True, True])

    def test_from_the_first_epoch_every_epoch_is_on(self):
        from plom_clustering_plugin.training.hme_train import reached

        self.assertEqual({reached(epoch, 1) for epoch in range(4)}, {True})


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class HardShareArgumentTests(SimpleTestCase):
    def test_the_share_is_a_fraction(self):
        from plom_clustering_plugin.training.hme_train import parse_args

        base = ["--data", "d", "--out", "o"]
        self.assertEqual(parse_args([*base, "--hard-share", "0.5"]).hard_share, 0.5)
        self.assertEqual(parse_args(base).hard_share, 0.0)
        for bad in ("1.5", "-0.1", "half"):
            with (
                self.subTest(value=bad),
                redirect_stderr(io.StringIO()) as err,
                self.assertRaises(SystemExit),
            ):
                parse_args([*base, "--hard-share", bad])
            self.assertIn("--hard-share", err.getvalue())

    def test_distinct_hard_batches_need_a_hard_share(self):
        from plom_clustering_plugin.training.hme_train import parse_args

        base = ["--data", "d", "--out", "o"]
        given = parse_args([*base, "--hard-share", "0.25", "--hard-distinct"])
        self.assertTrue(given.hard_distinct)
        self.assertFalse(parse_args(base).hard_distinct)
        with redirect_stderr(io.StringIO()) as err, self.assertRaises(SystemExit):
            parse_args([*base, "--hard-distinct"])
        self.assertIn("--hard-share", err.getvalue())

    def test_a_late_start_needs_a_hard_share_and_counts_from_one(self):
        from plom_clustering_plugin.training.hme_train import parse_args

        base = ["--data", "d", "--out", "o"]
        late = parse_args([*base, "--hard-share", "0.25", "--hard-from", "25"])
        self.assertEqual(late.hard_from, 25)
        self.assertEqual(parse_args(base).hard_from, 1)
        for bad in (
            ["--hard-from", "25"],
            ["--hard-share", "0.25", "--hard-from", "0"],
        ):
            with (
                self.subTest(argv=bad),
                redirect_stderr(io.StringIO()) as err,
                self.assertRaises(SystemExit),
            ):
                parse_args([*base, *bad])
            self.assertIn("--hard-", err.getvalue())
