# SPDX-License-Identifier: AGPL-3.0-or-later
"""The paired comparison of two evaluated methods (``compare``), on real harness runs."""

import json
import math
from pathlib import Path

import numpy as np

from plom_clustering_plugin import compare
from plom_clustering_plugin.evaluation.paired import compare as paired
from plom_clustering_plugin.evaluation.paired import load_side

from .test_evaluation_cli import ToyDataTestCase, run_main

BASE, OTHER = "pipeline@pixels", "pca-kmeans"


def run_compare(argv):
    return run_main(argv, main=compare.main)


class CompareTest(ToyDataTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = Path(cls.tmp.name)
        argv = ["--kind", "hme", "--data", str(cls.hme), "--protocol", "all", "exam"]
        argv += ["--limit-questions", "3", "--seeds", "2"]
        cls.both = root / "both.json"
        cls.base = root / "base.json"
        cls.other_seed = root / "other-seed.json"
        for path, methods, seed in (
            (cls.both, [BASE, OTHER], "0"),
            (cls.base, [BASE], "0"),
            (cls.other_seed, [BASE], "7"),
        ):
            code, _, err = run_main(
                [*argv, "--method", *methods, "--seed", seed, "--json", str(path)]
            )
            assert code == 0, err

    def test_differences_are_per_question_and_paired(self):
        run = json.loads(self.both.read_text())
        rows = paired(load_side(self.base), load_side(self.both, OTHER))
        exam = {r.metric: r for r in rows if r.protocol == "exam"}
        # The questions of both seeds, in the order the harness scored them.
        scores = {
            method: [
                q["ari"]
                for seeded in run["runs"]
                for result in seeded["results"]
                if result["protocol"] == "exam" and result["method"] == method
                for q in result["per_question"]
            ]
            for method in (BASE, OTHER)
        }
        diff = np.subtract(scores[OTHER], scores[BASE])
        self.assertEqual(exam["ari"].pairs, len(diff))
        self.assertGreater(len(diff), 2)
        self.assertAlmostEqual(exam["ari"].base, np.mean(scores[BASE]))
        self.assertAlmostEqual(exam["ari"].other, np.mean(scores[OTHER]))
        self.assertAlmostEqual(exam["ari"].difference, diff.mean())
        self.assertAlmostEqual(
            exam["ari"].standard_error, diff.std(ddof=1) / math.sqrt(len(diff))
        )
        modes = {(r.protocol, r.mode) for r in rows}
        self.assertEqual(
            modes, {("all", "true k"), ("all", "auto k"), ("exam", "auto k")}
        )

    def test_a_method_against_itself_differs_by_nothing(self):
        side = load_side(self.both, BASE)
        for row in paired(load_side(self.base), side):
            self.assertEqual(row.difference, 0.0)
            self.assertEqual(row.base, row.other)
            # Pairs that all differ alike (here: not at all) have no standard error.
            self.assertTrue(math.isnan(row.standard_error))

    def test_command_prints_a_table(self):
        code, out, _ = run_compare([str(self.base), str(self.both), "--method", OTHER])
        self.assertEqual(code, 0)
        self.assertIn(f"other: {OTHER}", out)
        rows = paired(load_side(self.base), load_side(self.both, OTHER))
        exam_ari = next(r for r in rows if r.protocol == "exam" and r.metric == "ari")
        line = next(
            line
            for line in out.splitlines()
            if line.startswith("exam") and " ari " in line
        )
        self.assertIn(f"{exam_ari.difference:+.4f}", line)

    def test_unusable_input_gives_a_message(self):
        broken = Path(self.tmp.name, "broken.json")
        broken.write_text("{not json")
        shaped = Path(self.tmp.name, "a-list.json")
        shaped.write_text("[1, 2]")
        # A file whose results lack their per-question scores.
        bare = Path(self.tmp.name, "bare.json")
        run = json.loads(self.base.read_text())
        for seeded in run.get("runs", [run]):
            for result in seeded["results"]:
                del result["per_question"]
        bare.write_text(json.dumps(run))
        cases = {
            "choose one": [str(self.both), str(self.base)],
            "has no method": [str(self.base), str(self.both), "--method", "nope"],
            "share no question": [str(self.base), str(self.other_seed)],
            "not a harness JSON": [str(broken), str(self.base)],
            "a-list.json: not a harness JSON": [str(self.base), str(shaped)],
            "bare.json: not a harness JSON file with per-question": [
                str(bare),
                str(self.base),
            ],
        }
        for message, argv in cases.items():
            with self.subTest(message=message):
                code, _, err = run_compare(argv)
                self.assertEqual(code, 2)
                self.assertIn(message, err)
