# SPDX-License-Identifier: AGPL-3.0-or-later
"""Integer convolutions for a trained hme-symbols graph, on a shipped network."""

from __future__ import annotations

import io
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import skipIf

import numpy as np
import onnx
import onnxruntime as ort
from django.test import SimpleTestCase

from plom_clustering_plugin.ml.preprocess import prepare
from plom_clustering_plugin.training import hme_quantise
from plom_clustering_plugin.training.hme_data import to_canvas
from tests.test_hme import render_expression
from tests.test_hme_training_smoke import NO_TORCH, plom_fonts

#: A shipped float network (real weights, committed).
SOURCE = Path(__file__).resolve().parent.parent / "weights" / "hme-symbols-v7.onnx"
CANVAS = (96, 384)


def written(count: int, seed: int) -> np.ndarray:
    """uint8 canvases of drawn expressions, prepared as a job prepares a crop."""
    rng = np.random.default_rng(seed)
    fonts = plom_fonts()
    canvases = np.zeros((count, *CANVAS), np.uint8)
    for i in range(count):
        text = "".join(rng.choice(list("xyab0123456789+-=()"), rng.integers(1, 8)))
        gray = render_expression(text, "2" if i % 3 == 0 else "", fonts[i % 3], rng)
        canvases[i] = to_canvas(prepare(gray), CANVAS)
    return canvases


def ink(canvases: np.ndarray) -> np.ndarray:
    """The canvases as the graph reads them."""
    from plom_clustering_plugin.training.hme_train import to_input

    return to_input(canvases).numpy()


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class QuantiseTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.path = Path(cls.tmp.name) / "int8.onnx"
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            hme_quantise.quantise(SOURCE, cls.path, ink(written(64, seed=1)))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_convolutions_read_integers_and_the_file_shrinks(self):
        ops = [node.op_type for node in onnx.load(str(self.path)).graph.node]
        self.assertIn("QuantizeLinear", ops)
        self.assertIn("DequantizeLinear", ops)
        source_convs = [n.op_type for n in onnx.load(str(SOURCE)).graph.node]
        self.assertEqual(ops.count("Conv"), source_convs.count("Conv"))
        self.assertLess(self.path.stat().st_size, SOURCE.stat().st_size / 2)

    def test_embeddings_stay_close_to_the_float_ones_on_unseen_ink(self):
        canvases = written(30, seed=2)  # not the drawings the ranges were read on
        agree = hme_quantise.cosines(SOURCE, self.path, canvases)
        self.assertEqual(agree.shape, (30,))
        self.assertLessEqual(agree.max(), 1 + 1e-5)
        # Font drawings, not the handwriting the gate's 0.99 is set on: a looser bar.
        self.assertGreater(agree.mean(), 0.97)
        self.assertGreater(agree.min(), 0.8)

    def test_same_contract_as_the_float_graph(self):
        session = ort.InferenceSession(
            str(self.path), providers=["CPUExecutionProvider"]
        )
        source = ort.InferenceSession(str(SOURCE), providers=["CPUExecutionProvider"])
        self.assertEqual(session.get_inputs()[0].name, source.get_inputs()[0].name)
        batch = ink(written(5, seed=3))
        name = session.get_inputs()[0].name
        out = session.run(None, {name: batch})[0]
        self.assertEqual(out.dtype, np.float32)
        self.assertEqual(out.shape, source.run(None, {name: batch})[0].shape)
        # Deterministic, and a batch of one reads as it does inside a batch.
        np.testing.assert_array_equal(out, session.run(None, {name: batch})[0])
        one = session.run(None, {name: batch[2:3]})[0]
        np.testing.assert_allclose(one[0], out[2], atol=1e-5)

    def test_a_graph_with_two_outputs_is_refused(self):
        model = onnx.load(str(SOURCE))
        model.graph.output.append(
            onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, None)
        )
        bad = Path(self.tmp.name) / "two-outputs.onnx"
        onnx.save(model, str(bad))
        with self.assertRaisesRegex(ValueError, "one input and one output"):
            hme_quantise.quantise(
                bad, Path(self.tmp.name) / "no.onnx", ink(written(2, 4))
            )

    def test_no_images_for_the_ranges_is_refused(self):
        with self.assertRaisesRegex(ValueError, "no images"):
            hme_quantise.quantise(
                SOURCE, Path(self.tmp.name) / "no.onnx", ink(written(0, seed=5))
            )

    def test_the_source_is_never_overwritten(self):
        folder = Path(self.tmp.name) / "same"
        folder.mkdir()
        model = folder / "hme-symbols-v7.onnx"
        model.write_bytes(SOURCE.read_bytes())
        argv = [
            "--model",
            str(model),
            "--entry",
            str(SOURCE.with_suffix(".entry.json")),
        ]
        argv += ["--out", str(folder), "--version", "7", "--data", str(folder)]
        with redirect_stderr(io.StringIO()) as err:
            self.assertEqual(hme_quantise.main(argv), 2)
        self.assertIn("would overwrite", err.getvalue())
        self.assertEqual(model.read_bytes(), SOURCE.read_bytes())

    def test_range_rows_are_seeded_and_bounded(self):
        rows = hme_quantise.range_rows(100, 10, seed=0)
        self.assertEqual(rows.tolist(), sorted(set(rows.tolist())))
        self.assertEqual(len(rows), 10)
        np.testing.assert_array_equal(rows, hme_quantise.range_rows(100, 10, 0))
        self.assertFalse(np.array_equal(rows, hme_quantise.range_rows(100, 10, 1)))
        self.assertEqual(hme_quantise.range_rows(4, 10, 0).tolist(), [0, 1, 2, 3])
