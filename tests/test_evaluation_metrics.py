# SPDX-License-Identifier: AGPL-3.0-or-later
import math

from django.test import SimpleTestCase

from plom_clustering_plugin.evaluation import metrics
from plom_clustering_plugin.evaluation.methods import labels_from_pipeline
from plom_clustering_plugin.ml.pipeline import (
    ANSWERED,
    BLANK,
    LOW_CONFIDENCE,
    OTHER,
    UNREADABLE,
    Answer,
    Group,
    PipelineResult,
)

# Worked example used by several tests:
#   truth     a a a b b c
#   predicted 1 1 2 2 2 3
# Contingency (rows = clusters, columns = classes a b c):
#   cluster 1: [2 0 0]   cluster 2: [1 2 0]   cluster 3: [0 0 1]
TRUTH = ["a", "a", "a", "b", "b", "c"]
PREDICTED = [1, 1, 2, 2, 2, 3]


class WorkedExampleTest(SimpleTestCase):
    def test_purity(self):
        # Majority per cluster: 2 + 2 + 1 = 5 of 6.
        self.assertAlmostEqual(metrics.purity(TRUTH, PREDICTED), 5 / 6)

    def test_inverse_purity(self):
        # Best cluster per class: a -> 2 (cluster 1), b -> 2, c -> 1; 5 of 6.
        self.assertAlmostEqual(metrics.inverse_purity(TRUTH, PREDICTED), 5 / 6)

    def test_marking_cost(self):
        # 3 clusters + 1 answer outside its majority (the 'a' in cluster 2) = 4, / 6.
        self.assertAlmostEqual(metrics.marking_cost(TRUTH, PREDICTED), 4 / 6)
        # Ideal: 3 distinct answers / 6.
        self.assertAlmostEqual(metrics.ideal_marking_cost(TRUTH), 3 / 6)

    def test_ari(self):
        # Pairs within cells: C(2,2) + C(2,2) = 2; cluster sizes 2,3,1 -> 1+3+0 = 4;
        # class sizes 3,2,1 -> 3+1+0 = 4; C(6,2) = 15; expected = 4*4/15 = 16/15;
        # max = (4+4)/2 = 4; ARI = (2 - 16/15) / (4 - 16/15) = 14/44 = 7/22.
        self.assertAlmostEqual(metrics.ari(TRUTH, PREDICTED), 7 / 22)

    def test_nmi(self):
        # Both label sets have part sizes 3,2,1 of 6:
        #   H = 1/2 ln 2 + 1/3 ln 3 + 1/6 ln 6 = 2/3 ln 2 + 1/2 ln 3.
        # I = 2/6 ln(2) + 1/6 ln(2/3) + 2/6 ln(2) + 1/6 ln(6) = ln 2.
        # Arithmetic NMI = I / ((H + H) / 2) = ln 2 / H.
        entropy = 2 / 3 * math.log(2) + 1 / 2 * math.log(3)
        self.assertAlmostEqual(metrics.nmi(TRUTH, PREDICTED), math.log(2) / entropy)

    def test_score_clustering_has_every_metric(self):
        scores = metrics.score_clustering(TRUTH, PREDICTED)
        self.assertEqual(set(scores), set(metrics.METRIC_NAMES))
        self.assertEqual(scores["k_found"], 3)
        self.assertEqual(scores["k_true"], 3)


class ExtremeClusteringsTest(SimpleTestCase):
    def test_all_singletons_cost_one_look_each(self):
        singletons = list(range(len(TRUTH)))
        self.assertEqual(metrics.purity(TRUTH, singletons), 1.0)
        # Classes of 3, 2, 1 answers: best single cluster holds 1 of each -> 3/6.
        self.assertAlmostEqual(metrics.inverse_purity(TRUTH, singletons), 3 / 6)
        self.assertEqual(metrics.marking_cost(TRUTH, singletons), 1.0)

    def test_one_cluster(self):
        together = ["x"] * len(TRUTH)
        # Majority 'a' = 3 of 6; inverse purity 1; cost (1 + 3 misplaced) / 6.
        self.assertAlmostEqual(metrics.purity(TRUTH, together), 3 / 6)
        self.assertEqual(metrics.inverse_purity(TRUTH, together), 1.0)
        self.assertAlmostEqual(metrics.marking_cost(TRUTH, together), 4 / 6)
        self.assertAlmostEqual(metrics.ari(TRUTH, together), 0.0)

    def test_perfect_clustering_reaches_the_ideal(self):
        renamed = [{"a": 7, "b": 8, "c": 9}[t] for t in TRUTH]
        scores = metrics.score_clustering(TRUTH, renamed)
        self.assertEqual(scores["purity"], 1.0)
        self.assertEqual(scores["inverse_purity"], 1.0)
        self.assertAlmostEqual(scores["nmi"], 1.0)
        self.assertAlmostEqual(scores["ari"], 1.0)
        self.assertEqual(scores["marking_cost"], scores["marking_cost_ideal"])

    def test_tuple_labels_and_errors(self):
        labels = [("group", 0), ("group", 0), ("other", 2)]
        self.assertEqual(metrics.purity(["a", "a", "b"], labels), 1.0)
        with self.assertRaises(ValueError):
            metrics.purity(["a"], [1, 2])
        self.assertTrue(math.isnan(metrics.purity([], [])))
        self.assertTrue(math.isnan(metrics.nmi([], [])))


class PipelineLabelsTest(SimpleTestCase):
    def test_bins_become_singletons_and_blanks_one_cluster(self):
        result = PipelineResult(
            groups=[Group(1, "g01"), Group(2, "other", OTHER)],
            answers=[
                Answer(0, ANSWERED, group=0),
                Answer(1, ANSWERED, group=0),
                Answer(2, LOW_CONFIDENCE, group=0),
                Answer(3, ANSWERED, group=1),
                Answer(4, ANSWERED, group=1),
                Answer(5, BLANK),
                Answer(6, BLANK),
                Answer(7, UNREADABLE, message="empty crop"),
            ],
        )
        clustered = labels_from_pipeline(result, 8)
        labels = clustered.labels
        self.assertEqual(labels[0], labels[1])
        self.assertEqual(labels[5], labels[6])
        # 0/1 group, 2 review, 3 and 4 other, 5/6 blank, 7 unreadable: 6 clusters.
        self.assertEqual(len(set(labels)), 6)
        self.assertEqual(
            (clustered.review, clustered.other, clustered.blank), (1, 2, 2)
        )
        # Truth: 0,1,2 say 'x'; 3,4 'y' and 'z'; 5,6 blank; 7 'w'.
        truth = ["x", "x", "x", "y", "z", "", "", "w"]
        # Majorities: group 2, review 1, others 1+1, blank 2, unreadable 1 = 8: pure.
        # Cost = (6 clusters + 0 misplaced) / 8; ideal = 5 distinct / 8.
        self.assertEqual(metrics.purity(truth, labels), 1.0)
        self.assertAlmostEqual(metrics.marking_cost(truth, labels), 6 / 8)
        self.assertAlmostEqual(metrics.ideal_marking_cost(truth), 5 / 8)
