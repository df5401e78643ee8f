# SPDX-License-Identifier: AGPL-3.0-or-later
"""Jobs fetch their model through the real first-use download path and record it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.test import TestCase, override_settings
from plom_server.Base.models import HueyTaskTracker

from plom_clustering_plugin.ml.onnx_runtime import clear_sessions
from plom_clustering_plugin.models import ClusteringJob
from plom_clustering_plugin.services import jobs

from .exam_fixtures import three_answer_exam
from .weights_helpers import WeightsServer, model_entry, tiny_onnx_model, write_manifest


class JobWeightsTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.exam, _ = three_answer_exam(9)

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.addCleanup(clear_sessions)
        folder = Path(self.tmp.name)
        self.model, _ = tiny_onnx_model(height=16, width=48, classes=12, softmax=False)
        entry = model_entry(
            "hme-symbols",
            "7",
            self.model,
            input_spec={
                "name": "ink",
                "shape": [-1, 1, 16, 48],
                "dtype": "float32",
                "normalisation": {"ink": "white-on-black", "range": [0, 1]},
            },
            output={"meaning": "embedding", "labels": None},
        )
        self.manifest = write_manifest(folder, [entry])
        self.cache = folder / "cache"
        self.entry = entry

    def settings_for(self, server=None, **extra):
        values = {
            "PLOM_CLUSTERING_MANIFEST": str(self.manifest),
            "PLOM_CLUSTERING_MODEL_DIR": str(self.cache),
            "PLOM_CLUSTERING_WEIGHTS_URL": server.base("good") if server else None,
        }
        values.update(extra)
        return override_settings(**values)

    def start(self):
        return jobs.start_job(
            question_index=1, version=1, rect=self.exam.answer_rects[1], kind="hme"
        )

    def test_first_job_downloads_verifies_and_records_the_model(self):
        with WeightsServer({self.entry["file"]: self.model}) as server:
            with self.settings_for(server):
                first = self.start()
                second = self.start()
            self.assertEqual(server.hits_for("good", self.entry["file"]), 1)
        for job in (first, second):
            job.refresh_from_db()
            self.assertEqual(job.status, HueyTaskTracker.COMPLETE, job.message)
            self.assertEqual(
                (job.model_name, job.model_version, job.model_sha256),
                ("hme-symbols", "7", self.entry["sha256"]),
            )
        self.assertTrue((self.cache / self.entry["file"]).exists())

    def test_offline_without_the_file_is_refused_before_queueing(self):
        before = ClusteringJob.objects.count()
        with self.settings_for(PLOM_CLUSTERING_DOWNLOAD=False):
            with self.assertRaises(jobs.JobError) as caught:
                self.start()
        message = str(caught.exception)
        self.assertIn(self.entry["file"], message)
        self.assertIn(str(self.cache), message)
        self.assertIn("plom_clustering_weights", message)
        self.assertEqual(ClusteringJob.objects.count(), before)

    def test_the_system_check_warns_when_offline_weights_are_missing(self):
        from django.core.checks import run_checks

        with self.settings_for(PLOM_CLUSTERING_DOWNLOAD=False):
            ids = [m.id for m in run_checks() if m.id == "plom_clustering.W002"]
            self.assertEqual(ids, ["plom_clustering.W002"])
            self.cache.mkdir()
            (self.cache / self.entry["file"]).write_bytes(self.model)
            ids = [m.id for m in run_checks() if m.id == "plom_clustering.W002"]
            self.assertEqual(ids, [])

    def test_a_failed_download_ends_the_job_in_error_with_the_reason(self):
        with WeightsServer({}) as server:
            with self.settings_for(server):
                job = self.start()
        job.refresh_from_db()
        self.assertEqual(job.status, HueyTaskTracker.ERROR)
        self.assertIn(self.entry["file"], job.message)
        self.assertFalse(job.clusters.exists())


class PinnedVersionTest(TestCase):
    """``PLOM_CLUSTERING_HME_VERSION`` picks an older model; an unknown one is refused."""

    @classmethod
    def setUpTestData(cls):
        cls.exam, _ = three_answer_exam(6)

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.addCleanup(clear_sessions)
        folder = Path(tmp.name)
        spec = {
            "name": "ink",
            "shape": [-1, 1, 16, 48],
            "dtype": "float32",
            "normalisation": {"ink": "white-on-black", "range": [0, 1]},
        }
        self.entries = {}
        for seed, version in enumerate(("7", "10")):
            model, _ = tiny_onnx_model(
                height=16, width=48, classes=12, softmax=False, seed=seed
            )
            entry = model_entry(
                "hme-symbols",
                version,
                model,
                input_spec=spec,
                output={"meaning": "embedding", "labels": None},
            )
            self.entries[version] = entry
            cache = folder / "cache"
            cache.mkdir(exist_ok=True)
            (cache / entry["file"]).write_bytes(model)
        self.values = {
            "PLOM_CLUSTERING_MANIFEST": str(
                write_manifest(folder, list(self.entries.values()))
            ),
            "PLOM_CLUSTERING_MODEL_DIR": str(folder / "cache"),
            "PLOM_CLUSTERING_DOWNLOAD": False,
        }

    def run_job(self, **pin):
        with override_settings(**self.values, **pin):
            job = jobs.start_job(
                question_index=1, version=1, rect=self.exam.answer_rects[1], kind="hme"
            )
        job.refresh_from_db()
        self.assertEqual(job.status, HueyTaskTracker.COMPLETE, job.message)
        return job.model_version, job.model_sha256

    def test_newest_unless_pinned(self):
        self.assertEqual(self.run_job(), ("10", self.entries["10"]["sha256"]))
        pinned = self.run_job(PLOM_CLUSTERING_HME_VERSION="7")
        self.assertEqual(pinned, ("7", self.entries["7"]["sha256"]))
        # Set but empty (an exported empty shell variable) means unset.
        self.assertEqual(self.run_job(PLOM_CLUSTERING_HME_VERSION=" ")[0], "10")

    def test_the_manifest_default_unless_pinned(self):
        folder = Path(self.values["PLOM_CLUSTERING_MODEL_DIR"]).parent / "named"
        folder.mkdir()
        manifest = write_manifest(
            folder,
            list(self.entries.values()),
            defaults={"hme-symbols": "7"},
        )
        self.values["PLOM_CLUSTERING_MANIFEST"] = str(manifest)
        self.assertEqual(self.run_job(), ("7", self.entries["7"]["sha256"]))
        pinned = self.run_job(PLOM_CLUSTERING_HME_VERSION="10")
        self.assertEqual(pinned, ("10", self.entries["10"]["sha256"]))

    def test_a_pinned_version_the_manifest_lacks_is_refused_before_queueing(self):
        before = ClusteringJob.objects.count()
        with override_settings(**self.values, PLOM_CLUSTERING_HME_VERSION="9"):
            with self.assertRaisesRegex(jobs.JobError, "HME_VERSION pins version 9"):
                jobs.start_job(
                    question_index=1,
                    version=1,
                    rect=self.exam.answer_rects[1],
                    kind="hme",
                )
        self.assertEqual(ClusteringJob.objects.count(), before)
