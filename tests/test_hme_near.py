# SPDX-License-Identifier: AGPL-3.0-or-later
"""Near misses for HME training: one-symbol edits and family batching."""

from __future__ import annotations

import importlib.util
import io
import re
import tempfile
from contextlib import redirect_stderr
from pathlib import Path
from unittest import skipIf

import numpy as np
from django.test import SimpleTestCase

from plom_clustering_plugin.training import hme_data, hme_near
from plom_clustering_plugin.training.hme_tokens import canonical, raw_tokens, tokens

from .test_hme_training_smoke import short_run

NO_TORCH = importlib.util.find_spec("torch") is None

EXPRESSIONS = [
    "x = 1",
    "2 x + 3",
    r"\frac { a } { b }",
    r"x ^ { 2 } + y",
    r"\left ( a + b \right )",
    "u",
    r"\alpha",
    r"\sqrt { 2 }",
]


class EditTests(SimpleTestCase):
    def test_every_kind_changes_the_expression_by_one_symbol_or_a_wrap(self):
        rng = np.random.default_rng(0)
        for kind in hme_near.EDITS:
            for base in EXPRESSIONS:
                for _ in range(20):
                    variant = hme_near.edit(base, kind, rng)
                    if variant is None:
                        continue
                    self.assertNotEqual(canonical(variant), canonical(base), kind)
                    before, after = tokens(base), tokens(variant)
                    if kind in ("insert", "delete"):
                        self.assertEqual(abs(len(after) - len(before)), 1, variant)
                    if kind in ("replace", "swap"):
                        self.assertEqual(len(after), len(before), variant)
                    if kind == "wrap":
                        self.assertIn(" ".join(raw_tokens(base)), variant)

    def test_structure_is_never_edited(self):
        rng = np.random.default_rng(1)
        for base in EXPRESSIONS:
            structure = [t for t in raw_tokens(base) if t in ("{", "}", "^", r"\frac")]
            for kind in ("replace", "delete", "swap"):
                for _ in range(30):
                    variant = hme_near.edit(base, kind, rng)
                    if variant is None:
                        continue
                    kept = [
                        t for t in raw_tokens(variant) if t in ("{", "}", "^", r"\frac")
                    ]
                    self.assertEqual(kept, structure, variant)

    def test_no_group_is_emptied_and_lone_symbols_are_not_deleted(self):
        rng = np.random.default_rng(2)
        for _ in range(50):
            self.assertIsNone(hme_near.edit("u", "delete", rng))
            self.assertIsNone(hme_near.edit(r"\sqrt { 2 }", "delete", rng))
            variant = hme_near.edit(r"x ^ { 2 } + y", "delete", rng)
            self.assertNotIn("{ }", variant or "")

    def test_the_bracket_after_left_is_never_taken(self):
        rng = np.random.default_rng(3)
        for _ in range(100):
            variant = hme_near.edit(r"\left ( a + b \right )", "replace", rng)
            self.assertRegex(variant, r"^\\left \( .* \\right \)$")

    def test_an_unknown_kind_is_refused(self):
        with self.assertRaises(ValueError):
            hme_near.edit("x = 1", "shuffle", np.random.default_rng(0))


class NearMissTests(SimpleTestCase):
    def test_pairs_are_distinct_new_and_seeded(self):
        pairs = hme_near.near_misses(EXPRESSIONS, 30, np.random.default_rng(4))
        self.assertEqual(len(pairs), 30)
        known = {canonical(t) for t in EXPRESSIONS}
        variants = [canonical(v) for _, v in pairs]
        self.assertEqual(len(set(variants)), 30)
        self.assertFalse(known & set(variants))
        self.assertTrue({b for b, _ in pairs} <= set(EXPRESSIONS))
        again = hme_near.near_misses(EXPRESSIONS, 30, np.random.default_rng(4))
        self.assertEqual(pairs, again)

    def test_a_written_spelling_of_a_known_expression_is_not_a_near_miss(self):
        # "x=1" is the same expression as "x = 1" (canonical), never its near miss.
        pairs = hme_near.near_misses(["x=1", "x = 2"], 40, np.random.default_rng(5))
        self.assertNotIn(canonical("x = 2"), {canonical(v) for _, v in pairs})
        self.assertNotIn(canonical("x = 1"), {canonical(v) for _, v in pairs})

    def test_excluded_expressions_are_never_near_misses(self):
        free = hme_near.near_misses(["x = 1"], 60, np.random.default_rng(6))
        taken = {canonical(v) for _, v in free}
        exclude = sorted(taken)[:20]
        pairs = hme_near.near_misses(
            ["x = 1"], 30, np.random.default_rng(6), exclude=exclude
        )
        self.assertFalse({canonical(v) for _, v in pairs} & set(exclude))

    def test_no_expressions_give_no_pairs(self):
        self.assertEqual(hme_near.near_misses([], 5, np.random.default_rng(0)), [])


class FamilyTests(SimpleTestCase):
    def setUp(self):
        # Rows: three writings of "x = 1", its near miss twice, one writing of a
        # second base and its near miss, and four rows of no family.
        self.latex = [
            "x = 1",
            "x=1",
            "x = 1",
            "f ( x = 1 )",
            "f ( x = 1 )",
            "2 x + 3",
            "2 x + 8",
            "a",
            "b",
            "c",
            "d",
        ]
        self.pairs = [("x = 1", "f ( x = 1 )"), ("2 x + 3", "2 x + 8")]
        self.group = hme_data.expression_groups(self.latex)

    def test_families_match_rows_by_expression(self):
        family = hme_near.families(self.latex, self.pairs)
        self.assertEqual(family.tolist(), [0, 0, 0, 0, 0, 1, 1, -1, -1, -1, -1])

    def test_one_row_of_each_member_is_brought_beside_the_first(self):
        family = hme_near.families(self.latex, self.pairs)
        anchors = np.arange(len(self.latex))
        for seed in range(20):
            order = hme_near.family_order(
                anchors, self.group, family, np.random.default_rng(seed)
            )
            self.assertEqual(sorted(order.tolist()), anchors.tolist())
            for fam in (0, 1):
                positions = [i for i, r in enumerate(order) if family[r] == fam]
                first_of = {}
                for i in positions:
                    first_of.setdefault(int(self.group[order[i]]), i)
                heads = sorted(first_of.values())
                # The first row of each member sits next to the family's first row.
                self.assertEqual(heads, list(range(heads[0], heads[0] + len(heads))))

    def test_the_other_rows_keep_the_shuffled_order(self):
        family = np.full(len(self.latex), -1)
        anchors = np.arange(len(self.latex))
        order = hme_near.family_order(
            anchors, self.group, family, np.random.default_rng(7)
        )
        self.assertEqual(
            order.tolist(), np.random.default_rng(7).permutation(anchors).tolist()
        )


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class NearMissTrainingTests(SimpleTestCase):
    def test_a_smoke_run_with_near_misses_typesets_and_says_so(self):
        from plom_clustering_plugin.ml.hme import read_entry

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            log = short_run(root, "--near-misses", "5")
            renders = re.findall(r"(\d+) synthetic renders of (\d+) expressions", log)
            # The training expressions (and exam answers), then the near misses.
            self.assertEqual(len(renders), 2, log)
            self.assertEqual(renders[1][1], "5")
            entry = read_entry(root / "out" / "hme-symbols-v3.entry.json")
            self.assertIn("5 near misses of training expressions", entry.training_data)
            self.assertIn("near miss batched beside its expression", entry.description)

    def test_near_misses_need_fonts_and_exclude_hard_batches(self):
        from plom_clustering_plugin.training.hme_train import parse_args

        base = ["--data", "d", "--out", "o", "--near-misses", "10"]
        self.assertEqual(parse_args([*base, "--synth-fonts", "debian"]).near_misses, 10)
        for extra in ([], ["--synth-fonts", "debian", "--hard-share", "0.5"]):
            with redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
                parse_args([*base, *extra])
