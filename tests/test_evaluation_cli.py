# SPDX-License-Identifier: AGPL-3.0-or-later
import gzip
import io
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
from django.test import SimpleTestCase
from sklearn.metrics import adjusted_rand_score

from plom_clustering_plugin import evaluate
from plom_clustering_plugin.evaluation import letters_to_dir
from plom_clustering_plugin.evaluation.baselines import (
    UpstreamFailure,
    candidate_ks,
    contour_features,
    kmeans_labels,
    spectral_labels,
    upstream_sweep,
)
from plom_clustering_plugin.evaluation.datasets import latex_answer_key, load_dataset
from plom_clustering_plugin.evaluation.methods import build_method
from plom_clustering_plugin.evaluation.protocols import (
    EXAM_MIN_CLASS_IMAGES,
    MANY,
    all_classes,
    exam_questions,
    top_classes,
)
from plom_clustering_plugin.evaluation.scanify import LAYOUTS, blank_reference, scanify
from plom_clustering_plugin.evaluation.synthetic import (
    SHAPES,
    draw_answer,
    write_toy_dataset,
)
from plom_clustering_plugin.ml.preprocess import prepare

REPO = Path(__file__).resolve().parents[1]
METHODS = ("pipeline", "pca-kmeans", "contour-kmeans", "upstream-plom", "one-group")


def run_main(argv, main=evaluate.main):
    """Run a command's ``main`` in process: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


class ToyDataTestCase(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        cls.hme = write_toy_dataset(root / "hme", "hme", classes=4, per_class=6)
        cls.mcq = write_toy_dataset(
            root / "mcq", "mcq", classes=3, per_class=5, one_offs=0
        )

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()


class EvaluateInProcessTest(ToyDataTestCase):
    def test_table_and_json_cover_every_method_and_mode(self):
        out_json = Path(self.tmp.name, "hme.json")
        code, out, _ = run_main(
            [
                "--kind",
                "hme",
                "--data",
                str(self.hme),
                "--protocol",
                "all",
                "exam",
                "--limit-questions",
                "2",
                "--json",
                str(out_json),
            ]
        )
        self.assertEqual(code, 0)
        self.assertIn("scanify=off", out)
        self.assertIn("all: 1 question, 24 answers, k true 4", out)
        self.assertIn("exam: 2 questions", out)
        self.assertIn("MC ideal", out)
        for method in METHODS:
            self.assertIn(method, out)
        run = json.loads(out_json.read_text())
        self.assertGreaterEqual(run["machine"]["cores"], 1)  # whose crops/s these are
        seen = Counter((r["protocol"], r["mode"]) for r in run["results"])
        # upstream-plom and one-group have no true-k mode; exam is automatic k only.
        self.assertEqual(
            seen, {("all", "true k"): 3, ("all", "auto k"): 5, ("exam", "auto k"): 5}
        )
        one_group = next(r for r in run["results"] if r["method"] == "one-group")
        # 24 answers, 4 classes of 6: 1 look + 18 moves, / 24.
        self.assertAlmostEqual(one_group["summary"]["marking_cost"], 19 / 24)
        self.assertEqual(run["protocols"]["exam"]["questions"], 2)
        for result in run["results"]:
            summary = result["summary"]
            self.assertEqual(
                summary["questions_ok"] + len(result["errors"]), summary["questions"]
            )
            if summary["questions_ok"]:
                self.assertGreaterEqual(summary["purity"], 0.0)
                self.assertLessEqual(summary["purity"], 1.0)
                if result["method"] == "one-group":  # does nothing: no speed shown
                    self.assertIsNone(summary["crops_per_second"])
                else:
                    self.assertGreater(summary["crops_per_second"], 0)
        pipeline_true = next(
            r
            for r in run["results"]
            if (r["protocol"], r["mode"], r["method"]) == ("all", "true k", "pipeline")
        )
        self.assertEqual(pipeline_true["summary"]["k_true"], 4)
        self.assertAlmostEqual(pipeline_true["summary"]["marking_cost_ideal"], 4 / 24)
        self.assertEqual(len(pipeline_true["per_question"]), 1)

    def test_scanify_with_one_method(self):
        code, out, _ = run_main(
            [
                "--kind",
                "mcq",
                "--data",
                str(self.mcq),
                "--protocol",
                "top50",
                "--method",
                "pipeline@pixels",
                "--scanify",
            ]
        )
        self.assertEqual(code, 0)
        self.assertIn("scanify=on", out)
        self.assertIn("pipeline@pixels", out)
        self.assertNotIn("contour-kmeans", out)

    def test_several_seeds_report_their_mean_and_spread(self):
        out_json = Path(self.tmp.name, "seeds.json")
        argv = ["--kind", "hme", "--data", str(self.hme), "--protocol", "all", "exam"]
        argv += ["--method", "pipeline@pixels", "pca-kmeans", "--limit-questions", "2"]
        code, out, _ = run_main([*argv, "--seed", "3", "--seeds", "3"])
        self.assertEqual(code, 0)
        self.assertIn("seeds=3,4,5 (mean over seeds", out)
        self.assertIn("±", out)
        code, _, _ = run_main(
            [*argv, "--seed", "3", "--seeds", "3", "--json", str(out_json)]
        )
        run = json.loads(out_json.read_text())
        self.assertEqual(run["seed"], [3, 4, 5])
        self.assertEqual([r["seed"] for r in run["runs"]], [3, 4, 5])
        # Each seed's run scores what that seed alone scores (timings aside).
        alone = Path(self.tmp.name, "seed4.json")
        run_main([*argv, "--seed", "4", "--json", str(alone)])
        for mine, single in zip(
            run["runs"][1]["results"],
            json.loads(alone.read_text())["results"],
            strict=True,
        ):
            for key in ("purity", "ari", "marking_cost", "k_found"):
                self.assertEqual(mine["summary"][key], single["summary"][key])
        for i, result in enumerate(run["results"]):
            for key in ("purity", "ari", "marking_cost"):
                values = [r["results"][i]["summary"][key] for r in run["runs"]]
                self.assertAlmostEqual(result["summary"][key], np.mean(values))
                self.assertAlmostEqual(result["spread"][key], np.std(values, ddof=1))
        exam = [r for r in run["runs"] if r["protocols"]["exam"]["questions"]]
        drawn = {json.dumps(r["results"][-1]["per_question"]) for r in exam}
        self.assertGreater(len(drawn), 1)  # the seeds drew different questions

    def test_seeds_must_be_a_positive_count(self):
        for bad in ("0", "two"):
            with self.subTest(bad=bad), self.assertRaises(SystemExit):
                run_main(["--kind", "hme", "--data", str(self.hme), "--seeds", bad])

    def test_ward_and_spectral_run_at_the_true_k_only(self):
        argv = ["--kind", "hme", "--data", str(self.hme), "--protocol", "all", "exam"]
        out_json = Path(self.tmp.name, "ward.json")
        argv += ["--method", "pipeline@pixels", "pipeline-ward@pixels"]
        argv += ["pipeline-spectral@pixels"]
        argv += ["--limit-questions", "1"]
        code, out, _ = run_main([*argv, "--json", str(out_json)])
        self.assertEqual(code, 0)
        rows = {
            (r["protocol"], r["mode"], r["method"].split("@")[0]): r["summary"]
            for r in json.loads(out_json.read_text())["results"]
        }
        self.assertEqual(
            set(rows),
            {
                ("all", "true k", "pipeline"),
                ("all", "true k", "pipeline-ward"),
                ("all", "true k", "pipeline-spectral"),
                ("all", "auto k", "pipeline"),
                ("exam", "auto k", "pipeline"),
            },
        )
        for variant in ("pipeline-ward", "pipeline-spectral"):
            row = rows["all", "true k", variant]
            self.assertEqual(row["k_found"], row["k_true"])

    def test_bad_inputs_give_a_message_and_exit_2(self):
        code, _, err = run_main(["--kind", "mcq", "--data", str(self.hme)])
        self.assertEqual(code, 2)
        self.assertIn("'label'", err)
        code, _, err = run_main(
            ["--kind", "hme", "--data", str(self.hme), "--method", "nope"]
        )
        self.assertEqual(code, 2)
        self.assertIn("unknown method 'nope'", err)


class EvaluateSubprocessTest(ToyDataTestCase):
    def test_module_runs_as_a_command(self):
        out_json = Path(self.tmp.name, "mcq.json")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "plom_clustering_plugin.evaluate",
                "--kind",
                "mcq",
                "--data",
                str(self.mcq),
                "--protocol",
                "top50",
                "--method",
                "pipeline",
                "pca-kmeans",
                "--json",
                str(out_json),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("top50: 1 question, 15 answers, k true 3", done.stdout)
        run = json.loads(out_json.read_text())
        self.assertEqual(
            {(r["mode"], r["method"]) for r in run["results"]},
            {(m, n) for m in ("true k", "auto k") for n in ("pipeline", "pca-kmeans")},
        )
        self.assertIn("plom_clustering_plugin.evaluate", run["command"])


class ProtocolTest(SimpleTestCase):
    def setUp(self):
        # 6 common classes of 5-30 images, 3 pairs, 20 one-offs.
        self.answers = [f"c{i}" for i in range(6) for _ in range(5 + 5 * i)]
        self.answers += [f"p{i}" for i in range(3) for _ in range(2)]
        self.answers += [f"one{i}" for i in range(20)]

    def test_all_and_top(self):
        every = all_classes(self.answers)
        self.assertEqual(every.k_true, 9)
        self.assertEqual(len(every), len(self.answers) - 20)
        top = top_classes(self.answers, count=2)
        self.assertEqual(set(top.truth), {"c5", "c4"})
        sample = all_classes(self.answers, max_answers=40)
        self.assertLessEqual(len(sample), 45)
        self.assertEqual(sample.k_true, 9)

    def test_exam_is_reproducible_skewed_and_has_one_offs(self):
        first = exam_questions(self.answers, "hme", count=5, seed=3)
        again = exam_questions(self.answers, "hme", count=5, seed=3)
        other = exam_questions(self.answers, "hme", count=5, seed=4)
        self.assertEqual(
            [q.indices.tolist() for q in first], [q.indices.tolist() for q in again]
        )
        self.assertNotEqual(
            [q.indices.tolist() for q in first], [q.indices.tolist() for q in other]
        )
        for question in first:
            counts = Counter(question.truth)
            common = [a for a in counts if a.startswith("c")]
            self.assertTrue(3 <= len(common) <= 6)
            self.assertEqual(max(counts, key=counts.get), max(common, key=counts.get))
            self.assertTrue(all(counts[a] == 1 for a in counts if a.startswith("one")))
            self.assertFalse(any(a.startswith("p") for a in counts))  # < 5 images
            self.assertEqual(len(set(question.indices.tolist())), len(question))
        self.assertTrue(any(a.startswith("one") for q in first for a in q.truth))

    def test_many_draws_more_answers_with_a_milder_skew(self):
        # 30 classes of 3-32 images and 40 one-offs: enough for 12-25 per question.
        answers = [f"c{i:02d}" for i in range(30) for _ in range(3 + i)]
        answers += [f"one{i}" for i in range(40)]
        exams = exam_questions(answers, "hme", count=5, seed=1)
        many = exam_questions(answers, "hme", count=5, seed=1, shape=MANY)
        self.assertEqual(
            [q.indices.tolist() for q in many],
            [
                q.indices.tolist()
                for q in exam_questions(answers, "hme", count=5, seed=1, shape=MANY)
            ],
        )
        for question in many:
            self.assertTrue(question.name.startswith("many-"))
            counts = Counter(question.truth)
            common = [a for a in counts if a.startswith("c")]
            self.assertTrue(12 <= len(common) <= 25, len(common))
            self.assertTrue(any(a.startswith("one") for a in counts))
        share = [max(Counter(q.truth).values()) / len(q) for q in many]
        exam_share = [max(Counter(q.truth).values()) / len(q) for q in exams]
        self.assertLess(max(share), min(exam_share))
        self.assertGreater(
            np.median([q.k_true for q in many]), np.median([q.k_true for q in exams])
        )

    def test_mcq_exam_has_no_one_offs(self):
        for question in exam_questions(self.answers, "mcq", count=5):
            self.assertTrue(2 <= question.k_true <= 6)
            self.assertFalse(any(a.startswith("one") for a in question.truth))

    def test_too_few_classes(self):
        with self.assertRaisesMessage(ValueError, f">= {EXAM_MIN_CLASS_IMAGES} images"):
            exam_questions(["a"] * 5 + ["b"] * 5, "hme")

    def test_latex_keys(self):
        self.assertEqual(
            latex_answer_key(r"x_{1} \lt 2"), latex_answer_key("x _ { 1 } < 2")
        )
        self.assertNotEqual(
            latex_answer_key(r"\frac{12}{3}"), latex_answer_key(r"\frac{1}{23}")
        )


class ScanifyAndBaselinesTest(SimpleTestCase):
    def test_scanify_is_seeded_and_reference_removes_the_box(self):
        rng = np.random.default_rng(0)
        clean = draw_answer(SHAPES["cross"], rng)
        layout = LAYOUTS["hme"]
        one = scanify(clean, layout, np.random.default_rng(5))
        two = scanify(clean, layout, np.random.default_rng(5))
        np.testing.assert_array_equal(one, two)
        self.assertEqual(one.shape, (layout.height, layout.width))
        with_box = prepare(one)
        cleaned = prepare(one, blank_reference(layout))
        # The printed box spans the crop; with the reference only the cross is left.
        self.assertGreater(with_box.bbox[3] - with_box.bbox[1], 0.9 * layout.width)
        self.assertLess(cleaned.bbox[3] - cleaned.bbox[1], 0.6 * layout.width)

    def test_upstream_fails_where_upstream_fails(self):
        same = np.tile([[1.0, 0.0, 0.0]], (5, 1))
        with self.assertRaisesMessage(UpstreamFailure, "NoThresholdFound"):
            upstream_sweep(same, "mcq")
        apart = np.eye(3)  # 3 dissimilar answers: N singletons -> score ValueError
        with self.assertRaisesMessage(UpstreamFailure, "threshold"):
            upstream_sweep(apart, "mcq")
        groups = np.repeat(np.eye(3), 4, axis=0) + 0.01 * np.arange(12)[:, None]
        labels = upstream_sweep(
            groups / np.linalg.norm(groups, axis=1, keepdims=True), "mcq"
        )
        self.assertEqual(len(set(labels)), 3)

    def test_spectral_keeps_a_spread_answer_whole_where_kmeans_splits_it(self):
        # One answer written in a long run of layouts (an arc of 40 writings) beside
        # two small tight answers closer to each other than the arc's ends are.
        rng = np.random.default_rng(0)
        angles = np.linspace(0, 1.6, 40)
        arc = np.stack([np.cos(angles), np.sin(angles), 0 * angles, 0 * angles], 1)
        tight = [[0, 0, 1.0, 0], [0, 0, np.cos(0.25), np.sin(0.25)]]
        small = [np.add(c, 0.01 * rng.normal(size=(6, 4))) for c in tight]
        vectors = np.concatenate([arc, *small])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        truth = np.repeat([0, 1, 2], [40, 6, 6])
        spectral = spectral_labels(vectors, 3)
        kmeans = kmeans_labels(vectors, 3, seed=0, attempts=10)
        self.assertEqual(adjusted_rand_score(truth, spectral), 1.0)
        self.assertLess(adjusted_rand_score(truth, kmeans), 0.9)
        np.testing.assert_array_equal(spectral_labels(vectors, 1), 0)
        self.assertEqual(sorted(spectral_labels(vectors[:3], 5)), [0, 1, 2])

    def test_contour_features_and_k_candidates(self):
        rng = np.random.default_rng(1)
        square = contour_features(draw_answer(SHAPES["square"], rng))
        bars = contour_features(draw_answer(SHAPES["bars"], rng))
        self.assertGreater(bars[1], square[1])  # three strokes, more contours
        self.assertEqual(candidate_ks(4), [2])
        self.assertEqual(candidate_ks(100)[0], 2)
        self.assertEqual(candidate_ks(100)[-1], 50)

    def test_method_names(self):
        self.assertTrue(build_method("pipeline@pixels", "hme").supports_true_k)
        self.assertFalse(build_method("upstream-plom", "mcq").supports_true_k)
        with self.assertRaisesMessage(ValueError, "uses no embedder"):
            build_method("pca-kmeans@pixels", "hme")
        with self.assertRaisesMessage(ValueError, "unknown embedder"):
            build_method("pipeline@nope", "hme")

    def test_a_manifest_version_or_a_candidate_file_as_embedder(self):
        older = build_method("pipeline@hme-symbols:4", "hme").embedder
        self.assertEqual(older.version, "4")
        with self.assertRaises(LookupError):
            build_method("pipeline@hme-symbols:999", "hme")
        with self.assertRaisesMessage(ValueError, "unknown embedder"):
            build_method("pipeline@pixels:1", "hme")
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("hme-symbols-v4.onnx", "hme-symbols-v4.entry.json"):
                shutil.copy(REPO / "weights" / name, tmp)
            entry = str(Path(tmp, "hme-symbols-v4.entry.json"))
            method = build_method(f"pipeline-ward@{entry}", "hme")
            self.assertEqual(method.embedder.sha256, older.sha256)
            with open(Path(tmp, "hme-symbols-v4.onnx"), "ab") as handle:
                handle.write(b"tampered")
            with self.assertRaisesMessage(ValueError, "differs from"):
                build_method(f"pipeline@{entry}", "hme")
        with self.assertRaisesMessage(ValueError, "no entry file"):
            build_method(f"pipeline@{entry}", "hme")


class LettersToDirTest(SimpleTestCase):
    def make_source(self, root: Path, labels, jsonl_labels):
        images = np.full((len(labels), 64, 64), 255, np.uint8)
        np.savez(root / "images64.npz", images=images, labels=np.array(labels))
        with gzip.open(root / "strokes.jsonl.gz", "wt") as handle:
            for i, label in enumerate(jsonl_labels):
                record = {
                    "label": label,
                    "char": label,
                    "writer": f"w{i % 5}",
                    "strokes": [],
                }
                handle.write(json.dumps(record) + "\n")

    def test_split_by_writer(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            labels = ["A", "b", "C", "d", "e"] * 4
            self.make_source(root, labels, labels)
            with redirect_stdout(io.StringIO()):
                self.assertEqual(
                    letters_to_dir.main(
                        [
                            "--source",
                            tmp,
                            "--out",
                            str(root / "dev"),
                            "--dev-fraction",
                            "0.4",
                        ]
                    ),
                    0,
                )
                self.assertEqual(
                    letters_to_dir.main(
                        [
                            "--source",
                            tmp,
                            "--out",
                            str(root / "train"),
                            "--split",
                            "train",
                            "--dev-fraction",
                            "0.4",
                        ]
                    ),
                    0,
                )
            dev = load_dataset(root / "dev", "mcq")
            train = load_dataset(root / "train", "mcq")
            self.assertEqual(len(dev) + len(train), 20)
            writers = {
                name: {
                    line.split(",")[3]
                    for line in (root / name / "labels.csv")
                    .read_text()
                    .splitlines()[1:]
                }
                for name in ("dev", "train")
            }
            self.assertEqual(len(writers["dev"]), 2)
            self.assertFalse(writers["dev"] & writers["train"])

    def test_refuses_misaligned_rows_and_the_repository(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.make_source(Path(tmp), ["A", "b"], ["b", "A"])
            with redirect_stderr(io.StringIO()) as err:
                self.assertEqual(
                    letters_to_dir.main(
                        ["--source", tmp, "--out", str(Path(tmp, "o"))]
                    ),
                    2,
                )
                self.assertIn("not aligned", err.getvalue())
                self.assertEqual(
                    letters_to_dir.main(["--source", tmp, "--out", str(REPO / "x")]), 2
                )
            self.assertFalse((REPO / "x").exists())


class HmeSplitDirTest(SimpleTestCase):
    def test_dev_and_train_sides_share_no_expression_and_cover_all(self):
        from plom_clustering_plugin.evaluation import hme_split_dir

        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp, "src")
            (source / "img").mkdir(parents=True)
            expressions = [f"x+{i % 7}" for i in range(30)]
            with (source / "labels.csv").open("w", encoding="utf-8") as handle:
                handle.write("image,latex,writer\n")
                for i, text in enumerate(expressions):
                    Path(source, "img", f"{i}.png").write_bytes(b"png")
                    handle.write(f"img/{i}.png,{text},w{i}\n")
            sides = {}
            for split in ("dev", "train"):
                out = Path(tmp, split)
                with redirect_stdout(io.StringIO()):
                    code = hme_split_dir.main(
                        ["--source", str(source), "--out", str(out), "--split", split]
                    )
                self.assertEqual(code, 0)
                dataset = load_dataset(out, "hme")
                sides[split] = Counter(dataset.answers)
                for path in dataset.paths:
                    self.assertTrue(Path(path).resolve().is_file())
            self.assertFalse(set(sides["dev"]) & set(sides["train"]))
            out = Path(tmp, "calibration")
            with redirect_stdout(io.StringIO()):
                code = hme_split_dir.main(
                    ["--source", str(source), "--out", str(out)]
                    + ["--split", "calibration", "--calib-share", "0.4"]
                )
            self.assertEqual(code, 0)
            held = Counter(load_dataset(out, "hme").answers)
            self.assertTrue(held)
            # Whole expressions of the training side, as hme_train holds them out.
            for answer, count in held.items():
                self.assertEqual(sides["train"][answer], count)
            self.assertLess(sum(held.values()), sum(sides["train"].values()))
            self.assertEqual(
                sum(sides["dev"].values()) + sum(sides["train"].values()), 30
            )
            self.assertTrue(sides["dev"] and sides["train"])
            with redirect_stderr(io.StringIO()):
                inside = hme_split_dir.main(
                    [
                        "--source",
                        str(source),
                        "--out",
                        str(letters_to_dir.REPOSITORY / "x"),
                    ]
                )
            self.assertEqual(inside, 2)
