# SPDX-License-Identifier: AGPL-3.0-or-later
"""Training on the mean of two readings, as ``hme_views`` reads crops at run time."""

from __future__ import annotations

import importlib.util
import io
from contextlib import redirect_stderr
from fractions import Fraction
from unittest import skipIf

import numpy as np
from django.test import SimpleTestCase

NO_TORCH = importlib.util.find_spec("torch") is None


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class ViewLossTests(SimpleTestCase):
    def test_the_shrink_matches_what_the_wrapped_graph_reads(self):
        import torch

        from plom_clustering_plugin.training.hme_view_loss import shrink_batch
        from plom_clustering_plugin.training.hme_views import shrink_canvases

        batch = np.random.default_rng(0).random((3, 1, 48, 192), dtype=np.float32)
        for shrink in (Fraction(2, 3), Fraction(1, 2), Fraction(3, 4)):
            with self.subTest(shrink=shrink):
                ours = shrink_batch(torch.from_numpy(batch), shrink).numpy()
                self.assertEqual(ours.shape, batch.shape)
                np.testing.assert_allclose(
                    ours, shrink_canvases(batch, shrink), atol=1e-6
                )

    def test_a_doubled_batch_gives_the_mean_embedding_and_the_full_size_rest(self):
        import torch
        from torch.nn import functional as F

        from plom_clustering_plugin.training.hme_view_loss import first_reading

        gen = torch.Generator().manual_seed(0)
        logits = torch.randn(6, 5, generator=gen)
        embedding = F.normalize(torch.randn(6, 8, generator=gen), dim=1)
        counts = [torch.rand(6, 5, generator=gen)]
        got_logits, got_embedding, got_counts = first_reading(
            logits, embedding, counts, 3
        )
        self.assertTrue(torch.equal(got_logits, logits[:3]))
        self.assertTrue(torch.equal(got_counts[0], counts[0][:3]))
        expected = F.normalize(embedding[:3] + embedding[3:], dim=1)
        torch.testing.assert_close(got_embedding, expected)
        torch.testing.assert_close(got_embedding.norm(dim=1), torch.ones(3))

    def test_one_reading_passes_through_untouched(self):
        import torch

        from plom_clustering_plugin.training.hme_view_loss import (
            first_reading,
            with_shrunk,
        )

        x = torch.rand(4, 1, 48, 192)
        self.assertIs(with_shrunk(x, None), x)
        self.assertEqual(len(with_shrunk(x, Fraction(2, 3))), 8)
        outputs = (torch.rand(4, 5), torch.rand(4, 8), [])
        self.assertIs(first_reading(*outputs, 4)[1], outputs[1])

    def test_the_factor_must_shrink_the_canvas_to_whole_pixels(self):
        from plom_clustering_plugin.training.hme_train import parse_args

        base = ["--data", "d", "--out", "o"]
        self.assertIsNone(parse_args(base).views_loss)
        self.assertEqual(
            parse_args([*base, "--views-loss", "2/3"]).views_loss, Fraction(2, 3)
        )
        for bad in (["2/7"], ["1.5"], ["2/3", "--canvas", "16x48"]):
            with (
                self.subTest(argv=bad),
                redirect_stderr(io.StringIO()) as err,
                self.assertRaises(SystemExit),
            ):
                parse_args([*base, "--views-loss", *bad])
            self.assertIn("--views-loss", err.getvalue())

    def test_a_late_second_reading_needs_the_factor(self):
        from plom_clustering_plugin.training.hme_train import parse_args

        base = ["--data", "d", "--out", "o"]
        late = parse_args([*base, "--views-loss", "2/3", "--views-from", "37"])
        self.assertEqual(late.views_from, 37)
        self.assertEqual(parse_args(base).views_from, 1)
        with redirect_stderr(io.StringIO()) as err, self.assertRaises(SystemExit):
            parse_args([*base, "--views-from", "37"])
        self.assertIn("--views-loss", err.getvalue())
