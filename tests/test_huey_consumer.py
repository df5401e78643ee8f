# SPDX-License-Identifier: AGPL-3.0-or-later
"""A real ``djangohuey`` consumer process sees and runs the plugin's task."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import unittest
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import SimpleTestCase, TransactionTestCase
from django_huey import get_queue
from plom_server.Base.models import HueyTaskTracker

from plom_clustering_plugin.models import AnswerMembership, ClusteringJob
from plom_clustering_plugin.services import jobs

from .exam_fixtures import three_answer_exam

ROOT = Path(__file__).resolve().parent.parent


def start_consumer(**env) -> subprocess.Popen:
    """``django-admin djangohuey --queue chores`` with the plugin's settings."""
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "plom_clustering_plugin.settings",
        "PYTHONPATH": str(ROOT),
        "PLOM_HUEY_WORKERS": "1",
        # The consumer fetches weights from the same local mirror into the same cache.
        "PLOM_CLUSTERING_WEIGHTS_URL": settings.PLOM_CLUSTERING_WEIGHTS_URL,
        "PLOM_CLUSTERING_MODEL_DIR": settings.PLOM_CLUSTERING_MODEL_DIR,
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "django", "djangohuey", "--queue", "chores", "-w", "1"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


class ConsumerRegistrationTest(SimpleTestCase):
    def test_the_consumer_lists_the_clustering_task(self):
        process = start_consumer()
        deadline = time.monotonic() + 90
        lines = []
        try:
            for line in process.stdout:
                lines.append(line)
                if "huey_cluster_question" in line or time.monotonic() > deadline:
                    break
        finally:
            stop(process)
        self.assertTrue(
            any(
                "+ plom_clustering_plugin.tasks.huey_cluster_question" in x
                for x in lines
            ),
            "".join(lines[-20:]),
        )


@unittest.skipIf(
    connection.vendor == "sqlite", "the in-memory SQLite test database is per process"
)
class ConsumerRunsJobTest(TransactionTestCase):
    """The job is queued (not run inline) and a separate consumer process runs it."""

    def test_a_queued_job_completes_in_the_consumer(self):
        exam, _ = three_answer_exam(9)
        queue = get_queue("chores")
        queue.immediate = False
        try:
            job = jobs.start_job(
                question_index=1, version=1, rect=exam.answer_rects[1], kind="hme"
            )
        finally:
            queue.immediate = True
        self.assertEqual(job.status, HueyTaskTracker.QUEUED)
        process = start_consumer(
            PLOM_DATABASE_NAME=settings.DATABASES["default"]["NAME"]
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                job.refresh_from_db()
                if job.status in (HueyTaskTracker.COMPLETE, HueyTaskTracker.ERROR):
                    break
                time.sleep(0.5)
        finally:
            log = stop(process)
        self.assertEqual(
            job.status, HueyTaskTracker.COMPLETE, job.message + log[-2000:]
        )
        self.assertEqual(job.clusters.count(), 3)
        self.assertEqual(AnswerMembership.objects.filter(job=job).count(), 9)
        self.assertIsNotNone(ClusteringJob.objects.get(pk=job.pk).finished)
