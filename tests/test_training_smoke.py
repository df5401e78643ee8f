# SPDX-License-Identifier: AGPL-3.0-or-later
"""The letter training CLI end to end on a tiny pool it writes itself (needs torch)."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from unittest import skipIf

import numpy as np
from django.test import SimpleTestCase
from PIL import Image, ImageDraw

from plom_clustering_plugin.ml.letters import LETTERS
from tests.test_hme_training_smoke import plom_fonts

NO_TORCH = importlib.util.find_spec("torch") is None

#: One polyline skeleton per class, in a 0..100 box (y down); enough to be told apart.
SHAPES = {
    "A": [[(0, 100), (50, 0), (100, 100)], [(25, 55), (75, 55)]],
    "B": [
        [(0, 0), (0, 100)],
        [(0, 0), (70, 10), (70, 40), (0, 50), (80, 60), (80, 90), (0, 100)],
    ],
    "C": [[(90, 10), (50, 0), (5, 30), (5, 70), (50, 100), (90, 90)]],
    "D": [[(0, 0), (0, 100)], [(0, 0), (80, 20), (95, 50), (80, 80), (0, 100)]],
    "E": [[(90, 0), (0, 0), (0, 100), (90, 100)], [(0, 50), (70, 50)]],
    "F": [[(90, 0), (0, 0), (0, 100)], [(0, 50), (70, 50)]],
    "a": [[(80, 50), (40, 40), (10, 70), (40, 100), (80, 80)], [(80, 40), (80, 100)]],
    "b": [[(0, 0), (0, 100)], [(0, 60), (50, 45), (80, 75), (50, 100), (0, 95)]],
    "d": [[(90, 0), (90, 100)], [(90, 60), (40, 45), (10, 75), (40, 100), (90, 95)]],
    "e": [[(10, 70), (90, 70), (60, 40), (20, 50), (10, 80), (50, 100), (90, 90)]],
    "f": [[(80, 5), (50, 0), (35, 20), (35, 100)], [(10, 45), (70, 45)]],
}


def draw_letter(strokes: list) -> np.ndarray:
    """A 64x64 black-on-white rendering, like letters-train's ``images64.npz``."""
    image = Image.new("L", (64, 64), 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        points = [(12 + x * 0.13, 6 + y * 0.16) for x, y in stroke]
        draw.line(points, fill=0, width=3)
    return np.asarray(image)


def write_pool(folder: Path, writers: int = 10) -> None:
    """A letters-train-like pool: ``strokes.jsonl.gz`` and ``images64.npz``, row by row."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    with gzip.open(folder / "strokes.jsonl.gz", "wt", encoding="utf-8") as handle:
        for w in range(writers):
            for label, strokes in SHAPES.items():
                drawn = [
                    (np.asarray(s, float) * 3 + rng.normal(0, 4, (len(s), 2)))
                    .round(1)
                    .tolist()
                    for s in strokes
                ]
                record = {
                    "label": label,
                    "char": label,
                    "writer": f"test:w{w}",
                    "source": "test",
                    "quality": "OK",
                    "strokes": drawn,
                }
                handle.write(json.dumps(record) + "\n")
                images.append(draw_letter(drawn))
                labels.append(label)
    np.savez(folder / "images64.npz", images=np.stack(images), labels=np.array(labels))


@skipIf(
    NO_TORCH, "torch is not installed (pip install torch==2.13.0, the 'train' extra)"
)
class TrainingSmokeTest(SimpleTestCase):
    def test_smoke_run_trains_exports_and_resumes(self):
        from plom_clustering_plugin.training import letters_train

        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            write_pool(tmp)
            args = [
                "--data",
                str(tmp),
                "--out",
                str(tmp / "out"),
                "--work",
                str(tmp / "work"),
                "--smoke",
                "--processes",
                "1",
                "--fonts",
                ",".join(plom_fonts()[:2]),
            ]
            start = time.monotonic()
            with redirect_stdout(io.StringIO()) as printed:
                self.assertEqual(letters_train.main(args), 0)
            self.assertLess(time.monotonic() - start, 60)
            self.assertIn("epoch 2/2", printed.getvalue())
            # 12 characters, 2 draws each, in each of the 2 fonts.
            self.assertIn("48 letters drawn in 2 fonts", printed.getvalue())
            model = tmp / "out" / "mcq-letters-v3.onnx"
            self.assertTrue(model.exists())
            self.assertTrue((tmp / "work" / "smoke" / "letters-checkpoint.pt").exists())
            log = json.loads((tmp / "out" / "letters-train-log.json").read_text())
            self.assertLess(log["onnx_torch_max_diff"], 1e-4)

            import onnxruntime as ort

            session = ort.InferenceSession(
                str(model), providers=["CPUExecutionProvider"]
            )
            batch = np.zeros((3, 1, 64, 64), np.float32)
            batch[:, :, 10:50, 30:34] = 1.0
            p, r = session.run(["probabilities", "reject"], {"input": batch})
            self.assertEqual(p.shape, (3, len(LETTERS)))
            np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
            self.assertEqual(r.shape, (3, 1))

            # The same command again finds the finished checkpoint and only re-exports.
            with redirect_stdout(io.StringIO()) as printed:
                self.assertEqual(letters_train.main(args), 0)
            self.assertIn("resumed after epoch 2", printed.getvalue())
            self.assertNotIn("epoch 1/2", printed.getvalue())

            # The manifest entry tells how the model was made, from the run's log.
            from plom_clustering_plugin.training.letters_eval import build_entry

            entry = build_entry(model, {}, 0.5)
            self.assertIn(
                "--fonts " + ",".join(plom_fonts()[:2]), entry["training_command"]
            )
            self.assertIn("--model-file mcq-letters-v3.onnx", entry["training_command"])
            self.assertIn("handwriting font", entry["training_data"])
            self.assertEqual(entry["version"], "3")
