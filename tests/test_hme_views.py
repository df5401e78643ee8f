# SPDX-License-Identifier: AGPL-3.0-or-later
"""The views wrapper: a trained hme-symbols graph read at full size and shrunk."""

from __future__ import annotations

import argparse
import io
import tempfile
from contextlib import redirect_stderr
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from django.test import SimpleTestCase

from plom_clustering_plugin.argtypes import exact_fraction
from plom_clustering_plugin.training import hme_views

#: The shipped file the wrapper is tried on (real weights, committed).
V7 = Path(__file__).resolve().parent.parent / "weights" / "hme-symbols-v7.onnx"
CANVAS = (96, 384)


class ShrinkTests(SimpleTestCase):
    def test_ink_is_area_resampled_and_centred(self):
        batch = np.zeros((1, 1, *CANVAS), np.float32)
        batch[0, 0, 30:60, 90:300] = 1.0
        small = hme_views.shrink_canvases(batch, Fraction(2, 3))
        self.assertEqual(small.shape, batch.shape)
        # Area resampling keeps the ink's mass times the area ratio.
        self.assertAlmostEqual(small.sum(), batch.sum() * 4 / 9, places=3)
        rows, cols = np.nonzero(small[0, 0])
        self.assertEqual((rows.min(), rows.max() + 1), (36, 56))
        self.assertEqual((cols.min(), cols.max() + 1), (124, 264))

    def test_fractions_that_miss_whole_pixels_are_refused(self):
        self.assertEqual(hme_views.shrunk_size(CANVAS, Fraction(2, 3)), (64, 256))
        with self.assertRaisesRegex(ValueError, "does not shrink by 3/5"):
            hme_views.shrunk_size(CANVAS, Fraction(3, 5))

    def test_the_argument_keeps_the_ratio_exact(self):
        self.assertEqual(exact_fraction("2/3"), Fraction(2, 3))
        for bad in ("1", "0", "4/3", "two thirds", "1/0"):
            with self.assertRaises(argparse.ArgumentTypeError):
                exact_fraction(bad)


class WrappedGraphTests(SimpleTestCase):
    def test_the_graph_returns_the_mean_of_the_views(self):
        source = onnx.load(str(V7))
        with tempfile.TemporaryDirectory() as tmp:
            for shrinks in ([Fraction(2, 3)], [Fraction(2, 3), Fraction(1, 2)]):
                path = Path(tmp) / "views.onnx"
                onnx.save(hme_views.add_views(source, CANVAS, shrinks), str(path))
                difference = hme_views.check_views(V7, path, CANVAS, shrinks)
                self.assertLess(difference, hme_views.TOLERANCE)

                session = ort.InferenceSession(
                    str(path), providers=["CPUExecutionProvider"]
                )
                (given,) = session.get_inputs()
                self.assertEqual(given.name, source.graph.input[0].name)
                ink = np.zeros((5, 1, *CANVAS), np.float32)
                ink[:, :, 20:70, 40:300] = np.linspace(0.2, 1.0, 5)[:, None, None, None]
                out = session.run(None, {given.name: ink})[0]
                plain = ort.InferenceSession(
                    str(V7), providers=["CPUExecutionProvider"]
                ).run(None, {given.name: ink})[0]
                self.assertEqual(out.shape, plain.shape)
                np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
                # A batch of one gives the row it gives inside a batch.
                one = session.run(None, {given.name: ink[2:3]})[0]
                np.testing.assert_allclose(one[0], out[2], atol=1e-5)
        # The source model is left as it was.
        self.assertEqual(source.SerializeToString(), V7.read_bytes())

    def test_the_shipped_v10_file_is_v7_wrapped_at_two_thirds(self):
        shipped = V7.with_name("hme-symbols-v10.onnx").read_bytes()
        rebuilt = hme_views.add_views(onnx.load(str(V7)), CANVAS, [Fraction(2, 3)])
        self.assertEqual(rebuilt.SerializeToString(), shipped)

    def test_a_graph_with_two_outputs_is_refused(self):
        model = onnx.load(str(V7))
        model.graph.output.append(
            onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, None)
        )
        with self.assertRaisesRegex(ValueError, "one input and one output"):
            hme_views.add_views(model, CANVAS, [Fraction(2, 3)])


class CommandTests(SimpleTestCase):
    def test_the_wrapped_file_may_not_replace_its_source(self):
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "hme-symbols-v7.onnx"
            source.write_bytes(V7.read_bytes())
            source.with_suffix(".entry.json").write_bytes(
                V7.with_suffix(".entry.json").read_bytes()
            )
            argv = ["--model", str(source), "--data", tmp, "--out", tmp]
            with redirect_stderr(io.StringIO()) as err:
                self.assertEqual(hme_views.main([*argv, "--version", "7"]), 2)
            self.assertIn("would overwrite the model it wraps", err.getvalue())
            self.assertEqual(source.read_bytes(), V7.read_bytes())
