# SPDX-License-Identifier: AGPL-3.0-or-later
"""A real clustering job on really scanned papers, through Huey, published to markers."""

from __future__ import annotations

from collections import defaultdict

from django.core.management import call_command
from django.test import TestCase
from plom_server.Base.models import HueyTaskTracker
from plom_server.Base.services import Settings
from plom_server.Mark.models import MarkingTask, MarkingTaskTag
from plom_server.Mark.services import QuestionMarkingService

from plom_clustering_plugin.ml.manifest import load_manifest
from plom_clustering_plugin.models import (
    AnswerCluster,
    AnswerMembership,
    ClusteringJob,
    PublishedTagLink,
)
from plom_clustering_plugin.services import jobs, publish

from .exam_fixtures import partition, three_answer_exam

TaskTagLink = MarkingTaskTag.task.through


def tag_snapshot():
    """Everything Plom's tag tables hold, comparable before and after."""
    tags = set(MarkingTaskTag.objects.values_list("pk", "text", "user_id"))
    links = set(TaskTagLink.objects.values_list("markingtasktag_id", "markingtask_id"))
    return tags, links


class ThreeAnswersJobTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        # Scanned in three bundles, as large scans are (one bundle per 8 papers).
        cls.exam, cls.truth = three_answer_exam(20, papers_per_bundle=8)
        cls.job = jobs.start_job(
            question_index=1,
            version=1,
            rect=cls.exam.answer_rects[1],
            kind="hme",
            user=cls.exam.manager,
        )

    def clusters_as_papers(self, job):
        groups = defaultdict(set)
        for m in AnswerMembership.objects.filter(job=job, cluster__isnull=False):
            groups[m.cluster_id].add(m.paper.paper_number)
        return partition(groups.values())

    def test_job_completes_with_exactly_the_three_groups(self):
        job = ClusteringJob.objects.get(pk=self.job.pk)
        self.assertEqual(job.status, HueyTaskTracker.COMPLETE, job.message)
        expected = defaultdict(set)
        for paper, text in self.truth.items():
            expected[text].add(paper)
        self.assertEqual(self.clusters_as_papers(job), partition(expected.values()))
        self.assertEqual(job.clusters.count(), 3)
        self.assertEqual((job.done, job.total), (20, 20))
        self.assertEqual(len(self.exam.bundle_pks), 3)
        entry = load_manifest().get_entry("hme-symbols")
        self.assertEqual(
            (job.model_name, job.model_version, job.model_sha256),
            (entry.name, entry.version, entry.sha256),
        )
        self.assertTrue(job.finished)
        self.assertEqual(job.message, "3 groups")

    def test_machine_assignment_is_recorded_for_reset(self):
        for m in AnswerMembership.objects.filter(job=self.job):
            self.assertEqual(m.cluster_id, m.machine_cluster_id)
            self.assertEqual(m.state, m.machine_state)
        names = set(self.job.clusters.values_list("name", "machine_name"))
        self.assertEqual({n for n, _ in names}, {m for _, m in names})

    def test_publish_tags_are_honoured_by_the_client_task_query(self):
        before = tag_snapshot()
        the_plan = publish.publish(self.job, self.exam.manager)
        self.assertEqual(len(the_plan.tags), 3)
        self.assertEqual(the_plan.task_count, 20)
        for text in the_plan.tags:
            self.assertTrue(text.startswith("cl_q1_"), text)
        for text, task_pks in the_plan.tags.items():
            members = set(task_pks)
            # The Qt client asks for the next task preferring one tag: it must get one
            # of that cluster's tasks, and keep getting them until they run out.
            seen = set()
            for _ in range(len(members)):
                task = QuestionMarkingService.get_first_available_task(
                    question_idx=1, version=1, user=self.exam.manager, tags=[text]
                )
                self.assertIn(task.pk, members)
                seen.add(task.pk)
                MarkingTask.objects.filter(pk=task.pk).update(status=MarkingTask.OUT)
            self.assertEqual(seen, members)
            self.assertIsNone(
                QuestionMarkingService.get_first_available_task(
                    question_idx=1, version=1, user=self.exam.manager, tags=[text]
                )
            )
        MarkingTask.objects.filter(status=MarkingTask.OUT).update(
            status=MarkingTask.TO_DO
        )
        publish.unpublish(self.job)
        self.assertEqual(tag_snapshot(), before)
        self.assertFalse(PublishedTagLink.objects.exists())

    def test_publishing_twice_is_harmless(self):
        publish.publish(self.job)
        once = set(
            TaskTagLink.objects.values_list("markingtasktag__text", "markingtask_id")
        )
        publish.publish(self.job)
        twice = set(
            TaskTagLink.objects.values_list("markingtasktag__text", "markingtask_id")
        )
        self.assertEqual(twice, once)
        self.assertEqual(len(once), 20)
        self.assertEqual(
            MarkingTaskTag.objects.filter(text__startswith="cl_q1_").count(), 3
        )

    def test_unpublish_keeps_tags_that_existed_before(self):
        the_plan = publish.plan(self.job)
        text, task_pks = next(iter(the_plan.tags.items()))
        # Someone already tagged one task by hand with the very same text.
        tag = MarkingTaskTag.objects.create(text=text, user=self.exam.manager)
        tag.task.add(task_pks[0])
        before = tag_snapshot()
        publish.publish(self.job)
        self.assertEqual(MarkingTaskTag.objects.filter(text=text).count(), 1)
        self.assertEqual(tag.task.count(), len(task_pks))
        publish.unpublish(self.job)
        self.assertEqual(tag_snapshot(), before)

    def test_priority_hands_out_clusters_one_after_another_and_is_restored(self):
        todo = MarkingTask.objects.filter(question_index=1, status=MarkingTask.TO_DO)
        before = dict(todo.values_list("pk", "marking_priority"))
        strategy = Settings.key_value_store_get_or_none("task_order_strategy")
        the_plan = publish.publish(self.job, priority=True)
        cluster_of_task = {pk: t for t, pks in the_plan.tags.items() for pk in pks}
        order = []
        while True:
            task = QuestionMarkingService.get_first_available_task(
                question_idx=1, version=1, user=self.exam.manager
            )
            if task is None:
                break
            order.append(cluster_of_task[task.pk])
            MarkingTask.objects.filter(pk=task.pk).update(status=MarkingTask.OUT)
        # Each cluster comes as one run: the sequence changes tag exactly twice.
        runs = [t for i, t in enumerate(order) if i == 0 or order[i - 1] != t]
        self.assertEqual(len(runs), 3)
        self.assertEqual(len(order), 20)
        self.assertEqual(Settings.key_value_store_get("task_order_strategy"), "custom")
        MarkingTask.objects.filter(status=MarkingTask.OUT).update(
            status=MarkingTask.TO_DO
        )
        publish.unpublish(self.job)
        self.assertEqual(dict(todo.values_list("pk", "marking_priority")), before)
        self.assertEqual(
            Settings.key_value_store_get_or_none("task_order_strategy"), strategy
        )

    def test_a_new_job_leaves_the_older_jobs_results_alone(self):
        before = list(
            AnswerMembership.objects.filter(job=self.job).values_list(
                "paper_id", "cluster_id", "state"
            )
        )
        newer = jobs.start_job(
            question_index=1, version=1, rect=self.exam.answer_rects[1], kind="hme"
        )
        self.assertEqual(newer.status, HueyTaskTracker.COMPLETE)
        after = list(
            AnswerMembership.objects.filter(job=self.job).values_list(
                "paper_id", "cluster_id", "state"
            )
        )
        self.assertEqual(before, after)
        self.assertEqual(
            self.clusters_as_papers(newer), self.clusters_as_papers(self.job)
        )

    def test_delete_removes_groups_and_published_tags_only(self):
        before = tag_snapshot()
        scans = MarkingTask.objects.count()
        publish.publish(self.job)
        jobs.delete_job(self.job)
        self.assertFalse(ClusteringJob.objects.filter(pk=self.job.pk).exists())
        self.assertFalse(AnswerCluster.objects.filter(job_id=self.job.pk).exists())
        self.assertEqual(tag_snapshot(), before)
        self.assertEqual(MarkingTask.objects.count(), scans)

    def test_management_command_lists_shows_and_publishes(self):
        from io import StringIO

        out = StringIO()
        call_command("plom_cluster", "list", stdout=out)
        self.assertIn("q1 v1 p3", out.getvalue())
        out = StringIO()
        call_command("plom_cluster", "show", str(self.job.pk), stdout=out)
        self.assertEqual(out.getvalue().count(" papers: "), 3)
        out = StringIO()
        call_command("plom_cluster", "publish", str(self.job.pk), stdout=out)
        self.assertIn("3 tags on 20 marking tasks", out.getvalue())
        out = StringIO()
        call_command("plom_cluster", "unpublish", str(self.job.pk), stdout=out)
        self.assertIn("Removed 20 tag links", out.getvalue())
