# SPDX-License-Identifier: AGPL-3.0-or-later
"""Bad input gets a clear message and loses nothing."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from unittest import mock

from django.core.management import CommandError, call_command
from django.test import TestCase
from django.utils import timezone
from plom_server.Base.models import HueyTaskTracker
from plom_server.Papers.models import FixedPage

from plom_clustering_plugin.ml.embedders import PixelEmbedder
from plom_clustering_plugin.models import AnswerCluster, AnswerMembership, ClusteringJob
from plom_clustering_plugin.services import jobs

from .exam_fixtures import partition, three_answer_exam


def scan_of(paper_number: int, page: int = 3):
    return (
        FixedPage.objects.filter(paper__paper_number=paper_number, page_number=page)
        .select_related("image__baseimage")
        .first()
        .image
    )


class BrokenEmbedder(PixelEmbedder):
    """Fails like a model that cannot run (fault injection, not a result stand-in)."""

    def embed(self, crops):
        raise RuntimeError("the model ran out of memory")


class BadScansTest(TestCase):
    """Blank boxes, unscanned pages, corrupt and missing files, too few QR codes."""

    @classmethod
    def setUpTestData(cls):
        cls.exam, cls.truth = three_answer_exam(
            14, blanks=(4, 9), scanned_papers=list(range(1, 14))
        )
        Path = __import__("pathlib").Path
        Path(scan_of(5).baseimage.image_file.path).write_bytes(b"not a JPEG at all")
        Path(scan_of(6).baseimage.image_file.path).unlink()
        image = scan_of(7)
        image.parsed_qr = {"NE": image.parsed_qr["NE"]}
        image.save()
        cls.job = jobs.start_job(
            question_index=1, version=1, rect=cls.exam.answer_rects[1], kind="hme"
        )

    def membership(self, paper_number):
        return AnswerMembership.objects.get(
            job=self.job, paper__paper_number=paper_number
        )

    def test_job_completes_and_records_each_problem_per_paper(self):
        job = ClusteringJob.objects.get(pk=self.job.pk)
        self.assertEqual(job.status, HueyTaskTracker.COMPLETE, job.message)
        self.assertEqual(job.message, "3 groups, 2 blank, 3 unreadable, 1 not scanned")
        self.assertEqual(AnswerMembership.objects.filter(job=job).count(), 14)

        m = self.membership(14)
        self.assertEqual(m.state, AnswerMembership.NOT_SCANNED)
        self.assertEqual(m.message, "Page 3 of paper 14 is not scanned.")
        for paper in (4, 9):
            self.assertEqual(self.membership(paper).state, AnswerMembership.BLANK)
            self.assertIsNone(self.membership(paper).cluster)
        for paper in (5, 6):
            m = self.membership(paper)
            self.assertEqual(m.state, AnswerMembership.UNREADABLE)
            self.assertIn(f"paper {paper} could not be read", m.message)
        m = self.membership(7)
        self.assertEqual(m.state, AnswerMembership.UNREADABLE)
        self.assertIn("Too few QR codes were read on page 3 of paper 7", m.message)

    def test_the_good_papers_are_still_grouped_correctly(self):
        bad = {4, 5, 6, 7, 9, 14}
        expected = defaultdict(set)
        for paper, text in self.truth.items():
            if paper not in bad:
                expected[text].add(paper)
        found = defaultdict(set)
        for m in AnswerMembership.objects.filter(job=self.job, cluster__isnull=False):
            found[m.cluster_id].add(m.paper.paper_number)
        self.assertEqual(partition(found.values()), partition(expected.values()))

    def test_requests_that_cannot_run_are_refused_with_reasons_and_no_job(self):
        rect = self.exam.answer_rects[1]
        cases = [
            (dict(question_index=9), "There is no question 9; questions are 1, 2, 3."),
            (dict(version=2), "There is no version 2; versions are 1."),
            (dict(page_number=4), "Question 1 is on page(s) 3, not page 4."),
            (dict(kind="essay"), "Unknown kind 'essay'"),
            (
                dict(rect={**rect, "right": rect["left"]}),
                "Cannot crop that region: The answer rectangle is empty",
            ),
            (dict(rect={"left": 0.1}), "Cannot crop that region: 'top'"),
        ]
        before = ClusteringJob.objects.count()
        for change, message in cases:
            request = dict(question_index=1, version=1, rect=rect, kind="hme")
            request.update(change)
            with self.subTest(change=change):
                with self.assertRaises(jobs.JobError) as caught:
                    jobs.start_job(**request)
                self.assertIn(message, str(caught.exception))
        self.assertEqual(ClusteringJob.objects.count(), before)

    def test_a_failing_model_ends_in_error_and_writes_no_results(self):
        with mock.patch(
            "plom_clustering_plugin.services.jobs.embedder_for",
            return_value=BrokenEmbedder(),
        ):
            job = jobs.start_job(
                question_index=1, version=1, rect=self.exam.answer_rects[1], kind="hme"
            )
        job.refresh_from_db()
        self.assertEqual(job.status, HueyTaskTracker.ERROR)
        self.assertEqual(
            job.message, "The job failed: RuntimeError: the model ran out of memory"
        )
        self.assertFalse(AnswerCluster.objects.filter(job=job).exists())
        self.assertFalse(AnswerMembership.objects.filter(job=job).exists())

    def make_job(self, status, **fields):
        return ClusteringJob.objects.create(
            question_index=1,
            version=1,
            page_number=3,
            kind="hme",
            status=status,
            **self.exam.answer_rects[1],
            **fields,
        )

    def test_cancelling_a_queued_job_stops_it_before_it_runs(self):
        job = self.make_job(HueyTaskTracker.QUEUED)
        jobs.cancel_job(job)
        job.refresh_from_db()
        self.assertEqual(job.status, HueyTaskTracker.ERROR)
        self.assertEqual(job.message, "Cancelled by a user before it started.")
        jobs.run_job(job.pk, uuid.uuid4())  # the worker picks it up anyway
        job.refresh_from_db()
        self.assertEqual(job.status, HueyTaskTracker.ERROR)
        self.assertFalse(AnswerMembership.objects.filter(job=job).exists())

    def test_cancelling_a_running_job_stops_it_at_its_next_progress_report(self):
        job = self.make_job(HueyTaskTracker.STARTING, cancel_requested=True)
        jobs.run_job(job.pk, uuid.uuid4())
        job.refresh_from_db()
        self.assertEqual(job.status, HueyTaskTracker.ERROR)
        self.assertEqual(job.message, "Cancelled by a user.")
        self.assertFalse(AnswerMembership.objects.filter(job=job).exists())

    def test_a_job_whose_worker_died_can_be_stopped_and_deleted(self):
        job = self.make_job(HueyTaskTracker.RUNNING)
        with self.assertRaisesMessage(jobs.JobError, "cancel it before deleting it"):
            jobs.delete_job(job)
        ClusteringJob.objects.filter(pk=job.pk).update(
            last_update=timezone.now() - timedelta(hours=2)
        )
        job.refresh_from_db()
        self.assertTrue(jobs.is_stale(job))
        jobs.cancel_job(job)
        job.refresh_from_db()
        self.assertEqual(job.status, HueyTaskTracker.ERROR)
        self.assertIn("Stopped: its worker made no progress since", job.message)
        jobs.delete_job(job)
        self.assertFalse(ClusteringJob.objects.filter(pk=job.pk).exists())

    def test_cancelling_a_finished_job_is_refused(self):
        with self.assertRaisesMessage(jobs.JobError, "is Complete: nothing to cancel"):
            jobs.cancel_job(self.job)

    def test_command_errors_are_readable(self):
        with self.assertRaisesMessage(CommandError, "There is no clustering job 9999."):
            call_command("plom_cluster", "show", "9999")
        with self.assertRaisesMessage(CommandError, "--rect takes four numbers"):
            call_command(
                "plom_cluster", "start", "-q", "1", "--kind", "hme", "--rect", "1,2"
            )
        with self.assertRaisesMessage(CommandError, "There is no question 7"):
            call_command(
                "plom_cluster", "start", "-q", "7", "--kind", "hme", "--rect", "0,0,1,1"
            )


class NoExamYetTest(TestCase):
    def test_clustering_before_a_spec_exists_is_refused(self):
        with self.assertRaisesMessage(jobs.JobError, "There is no exam specification"):
            jobs.start_job(
                question_index=1,
                version=1,
                rect={"left": 0, "top": 0, "right": 1, "bottom": 1},
                kind="mcq",
            )
