# SPDX-License-Identifier: AGPL-3.0-or-later
"""Real transactions (no TestCase wrapper): durable blocks and two users at once."""

from __future__ import annotations

import threading
import unittest

from django.db import connection, connections
from django.test import TransactionTestCase
from plom_server.Base.models import HueyTaskTracker
from plom_server.Mark.models import MarkingTaskTag

from plom_clustering_plugin.models import ClusteringJob, PublishedTagLink
from plom_clustering_plugin.services import jobs, publish

from .exam_fixtures import three_answer_exam

TaskTagLink = MarkingTaskTag.task.through


class DurableTransactionsTest(TransactionTestCase):
    def setUp(self):
        self.exam, _ = three_answer_exam(9)

    def start(self):
        return jobs.start_job(
            question_index=1, version=1, rect=self.exam.answer_rects[1], kind="hme"
        )

    def test_whole_lifecycle_outside_any_outer_transaction(self):
        job = self.start()
        self.assertEqual(job.status, HueyTaskTracker.COMPLETE, job.message)
        publish.publish(job, priority=True)
        self.assertEqual(TaskTagLink.objects.count(), 9)
        jobs.delete_job(job)
        self.assertEqual(TaskTagLink.objects.count(), 0)
        self.assertEqual(MarkingTaskTag.objects.count(), 0)

    @unittest.skipIf(connection.vendor == "sqlite", "SQLite serialises all writers")
    def test_two_managers_publishing_at_once_leave_one_consistent_result(self):
        job = self.start()
        barrier = threading.Barrier(2)
        errors = []

        def publish_as_other_user():
            try:
                barrier.wait()
                publish.publish(ClusteringJob.objects.get(pk=job.pk))
            except Exception as err:  # reported below
                errors.append(err)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=publish_as_other_user) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(PublishedTagLink.objects.filter(job=job).count(), 9)
        self.assertEqual(TaskTagLink.objects.count(), 9)
        texts = list(MarkingTaskTag.objects.values_list("text", flat=True))
        self.assertEqual(len(texts), len(set(texts)), texts)
