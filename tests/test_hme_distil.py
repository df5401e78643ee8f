# SPDX-License-Identifier: AGPL-3.0-or-later
"""Loading a shipped hme-symbols graph back into torch, for distillation."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from unittest import skipIf

import onnx
from django.test import SimpleTestCase

NO_TORCH = importlib.util.find_spec("torch") is None

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class LoadStudentTests(SimpleTestCase):
    def test_shipped_networks_load_back_and_agree_with_onnxruntime(self):
        from plom_clustering_plugin.training.hme_distil import (
            TOLERANCE,
            load_student,
            network_shape,
        )

        for version, deeper in (("5", 0), ("7", 2)):
            path = WEIGHTS / f"hme-symbols-v{version}.onnx"
            self.assertEqual(network_shape(onnx.load(str(path))), (103, 16, deeper, 2))
            net, difference = load_student(path, (96, 384), threads=1)
            self.assertLess(difference, TOLERANCE)
            self.assertEqual(len(net.symbols.trunk), 5 + deeper)

    def test_a_three_scale_network_loads_back_with_its_third_scale(self):
        import torch

        from plom_clustering_plugin.training.hme_distil import (
            TOLERANCE,
            load_student,
            network_shape,
        )
        from plom_clustering_plugin.training.hme_export import export_onnx
        from plom_clustering_plugin.training.hme_model import HmeNet

        torch.manual_seed(0)
        net = HmeNet(9, width=4, deeper=1, input_scales=3).eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "three.onnx"
            export_onnx(net, path, (48, 192))
            self.assertEqual(network_shape(onnx.load(str(path))), (9, 4, 1, 3))
            loaded, difference = load_student(path, (48, 192), threads=1)
        self.assertLess(difference, TOLERANCE)
        self.assertEqual(loaded.input_scales, 3)

    def test_a_views_graph_is_not_a_network_to_train(self):
        from plom_clustering_plugin.training.hme_distil import load_student

        # v10 holds v7's convolutions, but its output is the mean of two readings.
        with self.assertRaisesRegex(ValueError, "are off by"):
            load_student(WEIGHTS / "hme-symbols-v10.onnx", (96, 384), threads=1)
