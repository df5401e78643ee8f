# SPDX-License-Identifier: AGPL-3.0-or-later
"""The instructor's fixes: move, merge, split, rename, accept, bin, reset, concurrency."""

from __future__ import annotations

from collections import defaultdict

from django.test import TestCase

from plom_clustering_plugin.models import AnswerCluster, AnswerMembership
from plom_clustering_plugin.services import jobs, publish, review

from .exam_fixtures import partition, three_answer_exam


def grouping(job):
    groups = defaultdict(set)
    for m in AnswerMembership.objects.filter(job=job, cluster__isnull=False):
        groups[m.cluster_id].add(m.paper.paper_number)
    return partition(groups.values())


def assignment(job):
    return sorted(
        AnswerMembership.objects.filter(job=job).values_list(
            "paper_id", "cluster_id", "state"
        )
    )


class ReviewTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.exam, cls.truth = three_answer_exam(12, blanks=(12,))
        cls.job = jobs.start_job(
            question_index=1, version=1, rect=cls.exam.answer_rects[1], kind="hme"
        )

    def setUp(self):
        self.job.refresh_from_db()
        self.machine = assignment(self.job)
        self.clusters = list(self.job.clusters.order_by("number"))

    def members_of(self, cluster):
        return list(AnswerMembership.objects.filter(cluster=cluster).order_by("pk"))

    def test_move_to_an_existing_and_to_a_new_cluster(self):
        a, b = self.clusters[0], self.clusters[1]
        moving = self.members_of(a)[:2]
        review.move(self.job.pk, [m.pk for m in moving], to_cluster=b.pk, revision=0)
        self.assertEqual(len(self.members_of(b)), 6)
        new = review.move(self.job.pk, [moving[0].pk], new_name="odd one", revision=1)
        self.assertFalse(new.made_by_machine)
        self.assertEqual(new.name, "odd one")
        self.assertEqual([m.pk for m in self.members_of(new)], [moving[0].pk])
        # Moving its only member out deletes the user-made cluster.
        review.move(self.job.pk, [moving[0].pk], to_cluster=a.pk, revision=2)
        self.assertFalse(AnswerCluster.objects.filter(pk=new.pk).exists())

    def test_a_blank_box_can_be_moved_into_a_cluster(self):
        blank = AnswerMembership.objects.get(job=self.job, paper__paper_number=12)
        review.move(self.job.pk, [blank.pk], to_cluster=self.clusters[0].pk)
        blank.refresh_from_db()
        self.assertEqual(blank.state, AnswerMembership.ANSWERED)

    def test_merge_then_split_recovers_the_groups(self):
        before = grouping(self.job)
        a, b = self.clusters[0], self.clusters[1]
        review.merge(self.job.pk, [a.pk, b.pk], revision=0)
        self.assertEqual(len(self.members_of(a)), 8)
        self.assertEqual(self.members_of(b), [])
        self.assertTrue(
            AnswerCluster.objects.filter(pk=b.pk).exists()
        )  # kept for reset
        parts = review.split(self.job.pk, a.pk, revision=1)
        self.assertEqual(len(parts), 2)
        self.assertEqual(grouping(self.job), before)

    def test_split_of_a_uniform_cluster_still_cuts_it_in_two(self):
        parts = review.split(self.job.pk, self.clusters[0].pk)
        # Any cut of identical answers is arbitrary; it must make a cut, lose nothing.
        self.assertGreaterEqual(len(parts), 2)
        self.assertEqual(sum(len(self.members_of(c)) for c in parts), 4)

    def test_rename_and_refuse_duplicates(self):
        a, b = self.clusters[0], self.clusters[1]
        review.rename(self.job.pk, a.pk, "  x plus   one ", revision=0)
        a.refresh_from_db()
        self.assertEqual(a.name, "x plus one")
        self.assertEqual(a.machine_name, "g01")
        with self.assertRaisesMessage(review.JobError, "already called 'x plus one'"):
            review.rename(self.job.pk, b.pk, "x plus one")
        with self.assertRaisesMessage(review.JobError, "needs a name"):
            review.rename(self.job.pk, b.pk, "   ")
        the_plan = publish.plan(self.job)
        self.assertIn("cl_q1_x_plus_one", the_plan.tags)

    def test_bin_then_accept_the_suggestion(self):
        a = self.clusters[0]
        member = self.members_of(a)[0]
        review.to_bin(self.job.pk, [member.pk], revision=0)
        member.refresh_from_db()
        self.assertEqual(member.state, AnswerMembership.LOW_CONFIDENCE)
        self.assertIsNone(member.cluster)
        self.assertEqual(member.suggested_cluster, a)
        self.assertEqual(
            review.accept_suggestions(self.job.pk, [member.pk], revision=1), 1
        )
        member.refresh_from_db()
        self.assertEqual((member.cluster, member.state), (a, AnswerMembership.ANSWERED))

    def test_reset_restores_the_machine_assignment_exactly(self):
        a, b, c = self.clusters
        review.merge(self.job.pk, [a.pk, b.pk])
        review.move(self.job.pk, [self.members_of(c)[0].pk], new_name="mine")
        review.rename(self.job.pk, c.pk, "renamed")
        review.reset(self.job.pk)
        self.assertEqual(assignment(self.job), self.machine)
        self.assertEqual(
            list(self.job.clusters.values_list("name", flat=True)),
            [x.machine_name for x in self.clusters],
        )

    def test_a_stale_edit_is_refused_and_changes_nothing(self):
        a, b = self.clusters[0], self.clusters[1]
        review.merge(self.job.pk, [a.pk, b.pk], revision=0)  # manager 1
        after_first = assignment(self.job)
        with self.assertRaisesMessage(review.StaleEdit, "Someone else changed these"):
            review.move(  # manager 2 still looks at revision 0
                self.job.pk, [self.members_of(a)[0].pk], to_cluster=b.pk, revision=0
            )
        self.assertEqual(assignment(self.job), after_first)
        self.job.refresh_from_db()
        self.assertEqual(self.job.revision, 1)

    def test_invalid_requests_are_refused(self):
        other = jobs.start_job(
            question_index=1, version=1, rect=self.exam.answer_rects[1], kind="mcq"
        )
        foreign = other.clusters.first()
        member = self.members_of(self.clusters[0])[0]
        with self.assertRaisesMessage(review.JobError, "is not part of job"):
            review.move(self.job.pk, [member.pk], to_cluster=foreign.pk)
        with self.assertRaisesMessage(review.JobError, "not part of job"):
            review.move(
                self.job.pk,
                [other.memberships.first().pk],
                to_cluster=self.clusters[0].pk,
            )
        with self.assertRaisesMessage(review.JobError, "Select at least one answer"):
            review.move(self.job.pk, [], to_cluster=self.clusters[0].pk)
        with self.assertRaisesMessage(review.JobError, "at least two clusters"):
            review.merge(self.job.pk, [self.clusters[0].pk])
        with self.assertRaisesMessage(
            review.JobError, "There is no clustering job 999"
        ):
            review.reset(999)

    def test_edits_mark_a_published_job_as_changed(self):
        publish.publish(self.job)
        self.job.refresh_from_db()
        self.assertFalse(self.job.changed_since_published)
        review.rename(self.job.pk, self.clusters[0].pk, "first")
        self.job.refresh_from_db()
        self.assertTrue(self.job.changed_since_published)
