# SPDX-License-Identifier: AGPL-3.0-or-later
import os
import tempfile
import threading
from pathlib import Path
from unittest import mock

import numpy as np
from django.test import SimpleTestCase, override_settings

from plom_clustering_plugin.ml.embedders import Embedder
from plom_clustering_plugin.ml.manifest import load_manifest
from plom_clustering_plugin.ml.onnx_runtime import (
    OnnxEmbedder,
    OnnxModelError,
    clear_sessions,
    load_embedder,
    load_session,
    normalise,
)
from plom_clustering_plugin.ml.preprocess import PreparedCrop, fit_to_canvas
from plom_clustering_plugin.weights_django import load_onnx_embedder

from .weights_helpers import model_entry, tiny_onnx_model, write_manifest

LABELS = ["A", "B", "C"]


def crop(seed: int, shape=(20, 30)) -> PreparedCrop:
    ink = np.random.default_rng(seed).random(shape).astype(np.float32)
    return PreparedCrop(ink, False, float(ink.sum()), (0, 0, *shape))


BLANK = PreparedCrop(np.zeros((1, 1), np.float32), True, 0.0, None)


def input_spec(shape, *, name="ink", dtype="float32", normalisation=None):
    return {
        "name": name,
        "shape": shape,
        "dtype": dtype,
        "normalisation": normalisation or {"ink": "white-on-black", "range": [0, 1]},
    }


class OnnxTestCase(SimpleTestCase):
    """Tiny ONNX files on disk and a manifest describing them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.folder = Path(cls.enterClassContext(tempfile.TemporaryDirectory()))
        models = {
            "probs": tiny_onnx_model(),
            "logits": tiny_onnx_model(softmax=False),
            "rank3": tiny_onnx_model(rank=3, height=6, width=10, softmax=False, seed=1),
            "fixed": tiny_onnx_model(batch=2),
            "double": tiny_onnx_model(dtype="float64"),
        }
        cls.weights = {key: w for key, (_, w) in models.items()}
        norm = {"ink": "black-on-white", "range": [-1, 1], "mean": 0.2, "std": 0.5}
        entries = [
            model_entry("probs", "1", models["probs"][0]),
            model_entry(
                "logits",
                "1",
                models["logits"][0],
                output={"meaning": "logits", "labels": LABELS},
                same_answer_distance=0.05,
            ),
            model_entry(
                "rank3",
                "1",
                models["rank3"][0],
                input_spec=input_spec([None, 6, 10], normalisation=norm),
                output={"meaning": "embedding", "labels": None},
            ),
            model_entry("fixed", "1", models["fixed"][0]),
            model_entry("double", "1", models["double"][0]),
        ]
        for entry, (content, _) in zip(entries, models.values(), strict=True):
            (cls.folder / entry["file"]).write_bytes(content)
        cls.manifest_path = write_manifest(cls.folder, entries)
        cls.manifest = load_manifest(cls.manifest_path)

    def setUp(self):
        clear_sessions()
        self.addCleanup(clear_sessions)

    def path(self, name):
        return self.folder / self.manifest.get_entry(name).file

    def session(self, name, **kwargs):
        entry = self.manifest.get_entry(name)
        return load_session(self.path(name), entry.sha256, **kwargs)

    def embedder(self, name, **kwargs):
        entry = self.manifest.get_entry(name)
        return OnnxEmbedder.from_file(entry, self.path(name), **kwargs)


class SessionTest(OnnxTestCase):
    def test_one_session_per_file_hash_and_threads(self):
        first = self.session("probs")
        self.assertIs(self.session("probs"), first)
        self.assertIsNot(self.session("probs", threads=2), first)
        self.assertIsNot(self.session("logits"), first)

    def test_threads_racing_to_first_use_share_one_session(self):
        sessions = []
        threads = [
            threading.Thread(target=lambda: sessions.append(self.session("probs")))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(len(sessions), 8)
        self.assertEqual(len({id(s) for s in sessions}), 1)

    def test_cpu_provider_and_thread_settings_are_applied(self):
        session = self.session("probs", threads=3)
        self.assertEqual(session.get_providers(), ["CPUExecutionProvider"])
        options = session.get_session_options()
        self.assertEqual(options.intra_op_num_threads, 3)
        self.assertEqual(options.inter_op_num_threads, 1)
        self.assertEqual(
            options.get_session_config_entry("session.intra_op.allow_spinning"), "0"
        )

    def test_unloadable_file_is_a_clear_error(self):
        broken = self.folder / "broken.onnx"
        broken.write_bytes(b"not a model")
        with self.assertRaisesMessage(OnnxModelError, "cannot load the ONNX model"):
            load_session(broken, "0" * 64)


class InputSpecTest(OnnxTestCase):
    def spec(self, **changes):
        folder = Path(self.enterContext(tempfile.TemporaryDirectory()))
        manifest = write_manifest(
            folder, [model_entry("x", "1", b"x", input_spec=input_spec(**changes))]
        )
        return load_manifest(manifest).get_entry("x").input

    def test_matching_spec_passes(self):
        entry = self.manifest.get_entry("probs")
        session = load_session(self.path("probs"), entry.sha256, input_spec=entry.input)
        self.assertEqual(session.get_inputs()[0].name, "ink")

    def test_mismatches_are_named(self):
        cases = [
            (
                "probs",
                {"shape": [-1, 1, 8, 8], "name": "image"},
                "the model has no input 'image'",
            ),
            ("probs", {"shape": [-1, 8, 8]}, "has rank 4"),
            ("probs", {"shape": [-1, 1, 16, 8]}, "axis 2 is 8 in the model, 16"),
            ("fixed", {"shape": [-1, 1, 8, 8]}, "axis 0 is 2 in the model, dynamic"),
            ("probs", {"shape": [-1, 1, 8, 8], "dtype": "float16"}, "tensor(float16)"),
            ("double", {"shape": [-1, 1, 8, 8]}, "is tensor(double)"),
        ]
        for model, changes, message in cases:
            with self.subTest(model=model, changes=changes):
                entry = self.manifest.get_entry(model)
                with self.assertRaises(OnnxModelError) as caught:
                    load_session(
                        self.path(model), entry.sha256, input_spec=self.spec(**changes)
                    )
                self.assertIn(f"{model}-v1.onnx: ", str(caught.exception))
                self.assertIn(message, str(caught.exception))

    def test_embedder_refuses_a_mismatched_session(self):
        entry = self.manifest.get_entry("rank3")
        with self.assertRaisesMessage(OnnxModelError, "has rank 4"):
            OnnxEmbedder(entry, self.session("probs"))


class EmbedderTest(OnnxTestCase):
    def test_follows_the_embedder_protocol(self):
        embedder = self.embedder("logits")
        self.assertIsInstance(embedder, Embedder)
        entry = self.manifest.get_entry("logits")
        self.assertEqual(
            (embedder.name, embedder.version, embedder.sha256),
            ("logits", "1", entry.sha256),
        )
        self.assertEqual(embedder.class_names, LABELS)
        self.assertEqual(embedder.same_answer_distance, 0.05)
        self.assertEqual(self.embedder("probs").same_answer_distance, 0.1)
        self.assertIsNone(self.embedder("rank3").class_names)

    def test_rows_are_unit_float32_and_blanks_zero(self):
        crops = [crop(1), BLANK, crop(2, (40, 10)), crop(3)]
        vectors = self.embedder("probs").embed(crops)
        self.assertEqual(vectors.shape, (4, 3))
        self.assertEqual(vectors.dtype, np.float32)
        norms = np.linalg.norm(vectors, axis=1)
        np.testing.assert_allclose(norms[[0, 2, 3]], 1.0, rtol=1e-5)
        self.assertEqual(norms[1], 0.0)
        self.assertEqual(self.embedder("probs").embed([BLANK]).shape, (1, 3))
        self.assertEqual(self.embedder("probs").embed([]).shape, (0, 3))

    def test_batches_match_one_by_one_and_repeat_exactly(self):
        crops = [crop(seed) for seed in range(7)]
        embedder = self.embedder("probs", batch_size=3)
        together = embedder.embed(crops)
        alone = np.concatenate([embedder.embed([c]) for c in crops])
        np.testing.assert_allclose(together, alone, atol=1e-6)
        np.testing.assert_array_equal(embedder.embed(crops), together)

    def test_probabilities_become_hellinger_and_logits_are_softmaxed(self):
        crops = [crop(seed) for seed in range(5)]
        probs = self.embedder("probs").embed(crops)
        logits = self.embedder("logits").embed(crops)
        np.testing.assert_allclose(probs, logits, atol=1e-5)
        canvases = np.stack([fit_to_canvas(c.ink, 8, 8).ravel() for c in crops])
        scores = canvases @ self.weights["probs"]
        softmax = np.exp(scores - scores.max(1, keepdims=True))
        softmax /= softmax.sum(1, keepdims=True)
        np.testing.assert_allclose(probs, np.sqrt(softmax), atol=1e-5)

    def test_embedding_uses_the_manifest_normalisation(self):
        crops = [crop(seed, (12, 40)) for seed in range(4)]
        vectors = self.embedder("rank3").embed(crops)
        entry = self.manifest.get_entry("rank3")
        canvases = np.stack([fit_to_canvas(c.ink, 6, 10) for c in crops])
        inputs = (-1 + (1.0 - canvases) * 2 - 0.2) / 0.5  # black-on-white, [-1, 1]
        np.testing.assert_allclose(
            normalise(canvases, entry.input.normalisation), inputs, atol=1e-6
        )
        raw = inputs.reshape(4, -1) @ self.weights["rank3"]
        expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        np.testing.assert_allclose(vectors, expected, atol=1e-5)

    def test_django_helper_applies_the_settings(self):
        cache = Path(self.enterContext(tempfile.TemporaryDirectory()))
        self.enterContext(mock.patch.dict(os.environ))
        for name in [n for n in os.environ if n.startswith("PLOM_CLUSTERING_")]:
            del os.environ[name]
        with override_settings(
            PLOM_CLUSTERING_MODEL_DIR=str(cache),
            PLOM_CLUSTERING_WEIGHTS_URL=self.folder.as_uri(),
            PLOM_CLUSTERING_ONNX_THREADS=2,
            PLOM_CLUSTERING_BATCH_SIZE=5,
        ):
            embedder = load_onnx_embedder("logits", manifest=self.manifest)
        self.assertTrue((cache / "logits-v1.onnx").exists())
        self.assertEqual(embedder.batch_size, 5)
        options = embedder.session.get_session_options()
        self.assertEqual(options.intra_op_num_threads, 2)

    def test_load_embedder_ensures_the_weights_first(self):
        cache = Path(self.enterContext(tempfile.TemporaryDirectory()))
        embedder = load_embedder(
            "probs",
            manifest=self.manifest,
            cache_dir=cache,
            base_url=self.folder.as_uri(),
            threads=2,
        )
        self.assertTrue((cache / "probs-v1.onnx").exists())
        self.assertEqual(embedder.session.get_session_options().intra_op_num_threads, 2)
        self.assertEqual(embedder.embed([crop(0)]).shape, (1, 3))
