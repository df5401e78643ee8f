# SPDX-License-Identifier: AGPL-3.0-or-later
"""The ensemble joiner: trained hme-symbols graphs read side by side as one."""

from __future__ import annotations

import dataclasses
import io
import tempfile
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from django.test import SimpleTestCase

from plom_clustering_plugin.ml.hme import read_entry
from plom_clustering_plugin.training import hme_ensemble

#: Two shipped files of different networks (real weights, committed).
WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
MEMBERS = [WEIGHTS / "hme-symbols-v7.onnx", WEIGHTS / "hme-symbols-v18.onnx"]
CANVAS = (96, 384)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def some_ink(count: int) -> np.ndarray:
    """Strokes of different lengths and darkness, one per canvas."""
    ink = np.zeros((count, 1, *CANVAS), np.float32)
    for i in range(count):
        ink[i, 0, 30 + 3 * i : 40 + 3 * i, 40 : 120 + 40 * i] = 0.4 + 0.1 * i
        ink[i, 0, 20:70, 200 + 10 * i : 206 + 10 * i] = 1.0
    return ink


class JoinedGraphTests(SimpleTestCase):
    def test_the_cosine_is_the_mean_of_the_members_cosines(self):
        models = [onnx.load(str(p)) for p in MEMBERS]
        before = [m.SerializeToString() for m in models]
        name = models[0].graph.input[0].name
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "joined.onnx"
            joined = hme_ensemble.join_models(
                models, name, models[0].graph.output[0].name
            )
            onnx.save(joined, str(path))
            self.assertLess(
                hme_ensemble.check_join(MEMBERS, path, CANVAS), hme_ensemble.TOLERANCE
            )
            ink = some_ink(5)
            out = session(path).run(None, {name: ink})[0]
            parts = [session(p).run(None, {name: ink})[0] for p in MEMBERS]
            one = session(path).run(None, {name: ink[3:4]})[0]
        self.assertEqual(out.shape, (5, sum(p.shape[1] for p in parts)))
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
        mean_cosine = sum(p @ p.T for p in parts) / len(parts)
        np.testing.assert_allclose(out @ out.T, mean_cosine, atol=1e-5)
        # A batch of one gives the row it gives inside a batch.
        np.testing.assert_allclose(one[0], out[3], atol=1e-5)
        # The members are left as they were.
        self.assertEqual([m.SerializeToString() for m in models], before)

    def test_a_graph_with_two_outputs_is_refused(self):
        models = [onnx.load(str(p)) for p in MEMBERS]
        models[1].graph.output.append(
            onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, None)
        )
        with self.assertRaisesRegex(ValueError, "one input and one output"):
            hme_ensemble.join_models(models, "ink", "embeddings")


class MemberTests(SimpleTestCase):
    def setUp(self):
        self.entries = [read_entry(p.with_suffix(".entry.json")) for p in MEMBERS]

    def test_members_of_one_split_and_input_may_join(self):
        hme_ensemble.check_members(self.entries)
        source = hme_ensemble.joined_source(self.entries)
        self.assertEqual(source.version, "7+18")
        for entry in self.entries:
            self.assertIn(entry.training_command, source.training_command)

    def test_one_member_is_not_an_ensemble(self):
        with self.assertRaisesRegex(ValueError, "at least two"):
            hme_ensemble.check_members(self.entries[:1])

    def test_members_of_different_splits_are_refused(self):
        other = dataclasses.replace(self.entries[1], seed=1)
        with self.assertRaisesRegex(ValueError, "another split"):
            hme_ensemble.check_members([self.entries[0], other])

    def test_members_reading_different_canvases_are_refused(self):
        wider = dataclasses.replace(self.entries[1].input, shape=(None, 1, 96, 512))
        other = dataclasses.replace(self.entries[1], input=wider)
        with self.assertRaisesRegex(ValueError, "reads another input"):
            hme_ensemble.check_members([self.entries[0], other])


class CommandTests(SimpleTestCase):
    def test_the_joined_file_may_not_replace_a_member(self):
        with tempfile.TemporaryDirectory() as tmp:
            copies = []
            for path in MEMBERS:
                copy = Path(tmp) / path.name
                copy.write_bytes(path.read_bytes())
                entry = path.with_suffix(".entry.json")
                copy.with_suffix(".entry.json").write_bytes(entry.read_bytes())
                copies.append(copy)
            argv = [arg for c in copies for arg in ("--model", str(c))]
            argv += ["--data", tmp, "--out", tmp, "--version", "18"]
            with redirect_stderr(io.StringIO()) as err:
                self.assertEqual(hme_ensemble.main(argv), 2)
            self.assertIn("would overwrite a member", err.getvalue())
            self.assertEqual(copies[1].read_bytes(), MEMBERS[1].read_bytes())
