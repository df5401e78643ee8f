# SPDX-License-Identifier: AGPL-3.0-or-later
"""The demo's pieces: answers from a folder, the summary and the contact sheet; launcher."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from django.test import SimpleTestCase
from PIL import Image, ImageDraw

from plom_clustering_plugin import launcher
from plom_clustering_plugin.demo.answers import answers_from_folder, make_answers
from plom_clustering_plugin.demo.report import (
    ClusterRow,
    QuestionReport,
    contact_sheet,
    format_report,
)


class AnswersTest(SimpleTestCase):
    def test_generated_answers_are_reproducible_and_varied(self):
        first = make_answers(12, seed=3)
        again = make_answers(12, seed=3)
        self.assertEqual(first[1][5].png, again[1][5].png)
        letters = {w.text for w in first[1].values()}
        self.assertGreater(len(letters), 2)
        pngs = [w.png for w in first[2].values() if w.png]
        self.assertEqual(len(pngs), len(set(pngs)))  # no two writings alike

    def test_answers_from_a_folder(self):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            rows = ["image,latex,extra"]
            for i, text in enumerate(["x+1", "x+1", "2y"]):
                img = Image.new("L", (120, 60), 255)
                ImageDraw.Draw(img).text((10, 20), text, fill=0)
                img.save(folder / f"e{i}.png")
                rows.append(f"e{i}.png,{text},ignored")
            (folder / "labels.csv").write_text("\n".join(rows) + "\n")
            question, answers = answers_from_folder(folder, 3, seed=0)
        self.assertEqual(question, 2)
        self.assertEqual(sorted(w.text for w in answers.values()), ["2y", "x+1", "x+1"])
        for written in answers.values():
            ink = Image.open(io.BytesIO(written.png))
            self.assertEqual(ink.mode, "RGBA")

    def test_a_folder_without_labels_is_refused_clearly(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesMessage(ValueError, "labels.csv does not exist"):
                answers_from_folder(tmp, 3)


class ReportTest(SimpleTestCase):
    def report(self):
        return QuestionReport(
            1,
            "Letter (A-F)",
            "2 groups, 1 blank",
            1.5,
            [
                ClusterRow("A", [1, 2, 3], ["A", "A", "B"]),
                ClusterRow("B", [4], ["B"]),
                ClusterRow("Blank", [5], [None], is_bin=True),
            ],
        )

    def test_summary_table(self):
        text = format_report(self.report())
        self.assertIn("purity 0.75", text)  # 3 of the 4 clustered answers agree
        self.assertIn("A                   3    0.67  A", text)
        self.assertIn("[Blank]", text)

    def test_contact_sheet_has_a_row_per_cluster_with_thumbnails(self):
        crop = np.full((20, 60, 3), 255, np.uint8)
        html = contact_sheet([self.report()], {(1, 1): crop, (1, 4): crop})
        self.assertEqual(html.count("<div class='row"), 3)
        self.assertEqual(html.count("data:image/png;base64,"), 2)
        self.assertIn("paper 2: A", html)


class LauncherTest(SimpleTestCase):
    def test_settings_module_respects_a_derived_one_but_not_plom_stock(self):
        for current, expected in [
            (None, launcher.PLUGIN_SETTINGS),
            ("plom_server.settings", launcher.PLUGIN_SETTINGS),
            ("mysite.settings", "mysite.settings"),
        ]:
            env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
            if current:
                env["DJANGO_SETTINGS_MODULE"] = current
            with mock.patch.dict(os.environ, env, clear=True):
                self.assertEqual(launcher.settings_module(), expected)

    def test_a_dedicated_queue_gets_its_own_consumer(self):
        with mock.patch.dict(os.environ, {"PLOM_CLUSTERING_QUEUE": "clustering"}):
            self.assertEqual(launcher.extra_queues(), ["clustering"])
        with mock.patch.dict(os.environ, {"PLOM_CLUSTERING_QUEUE": "chores"}):
            self.assertEqual(launcher.extra_queues(), [])
