# SPDX-License-Identifier: AGPL-3.0-or-later
"""The instructor's pages with Django's client, on a real scanned exam.

Permissions and CSRF for every view, each action's effect in the database, bad ids,
readable refusals and the stale-revision answer (409).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import Client, TestCase, override_settings
from django.urls import reverse
from plom_server.Authentication.services import AuthService
from plom_server.Base.models import HueyTaskTracker
from plom_server.Mark.models import MarkingTaskTag
from plom_server.Papers.models import Paper
from plom_server.Preparation.services.question_regions import QuestionRegionsService

import plom_clustering_plugin
from plom_clustering_plugin.models import AnswerCluster, AnswerMembership, ClusteringJob
from plom_clustering_plugin.services import jobs, regions, thumbnails

from .exam_fixtures import three_answer_exam

OVERRIDE_DIR = Path(plom_clustering_plugin.__file__).parent / "templates_override"


def templates_with_override() -> list[dict]:
    """The TEMPLATES setting with the plugin's override folder first (as settings.py
    is asked to do); unchanged when it is already there."""
    templates = copy.deepcopy(settings.TEMPLATES)
    dirs = [Path(d) for d in templates[0]["DIRS"]]
    if OVERRIDE_DIR not in dirs:
        templates[0]["DIRS"] = [OVERRIDE_DIR, *templates[0]["DIRS"]]
    return templates


def url(name: str, *args) -> str:
    return reverse(f"plom_clustering:{name}", args=args)


def page_urls(job_pk: int) -> list[str]:
    """Every GET page and fragment."""
    return [
        url("home"),
        url("jobs_fragment"),
        url("new_job"),
        url("preview"),
        url("job", job_pk),
        url("job_progress", job_pk),
        url("delete", job_pk),
        url("thumbnail", job_pk, 1),
        url("publish", job_pk),
    ]


def action_urls(job_pk: int) -> list[str]:
    """Every POST action."""
    names = ["cancel", "retry", "delete", "move", "merge", "split", "rename"]
    names += ["accept", "to_bin", "reset", "publish", "unpublish"]
    return [url("new_job")] + [url(name, job_pk) for name in names]


class ViewTestCase(TestCase):
    """A 10-paper exam: three answers on papers 1-8, paper 9 blank, 10 not scanned."""

    @classmethod
    def setUpTestData(cls):
        cls.exam, cls.truth = three_answer_exam(
            10, blanks=(9,), scanned_papers=list(range(1, 10))
        )
        cls.manager = cls.exam.manager
        cls.marker = User.objects.create_user("marker1", password="marker1")
        cls.marker.groups.add(Group.objects.get(name="marker"))
        cls.other_manager = User.objects.create_user("manager2", password="manager2")
        cls.other_manager.groups.add(Group.objects.get(name="manager"))
        cls.rect = cls.exam.answer_rects[1]
        cls.job = jobs.start_job(
            question_index=1, version=1, rect=cls.rect, kind="hme", user=cls.manager
        )

    def setUp(self):
        self.job.refresh_from_db()
        self.client.force_login(self.manager)
        self.addCleanup(thumbnails.delete_thumbnails, self.job.pk)

    def htmx_post(self, path, data, client=None):
        return (client or self.client).post(path, data, HTTP_HX_REQUEST="true")

    def clusters(self):
        """Non-empty clusters, largest first."""
        page = self.client.get(url("job", self.job.pk)).context["review"]
        return [card.cluster for card in page.cards]

    def members(self, cluster):
        return list(
            AnswerMembership.objects.filter(cluster=cluster).order_by(
                "paper__paper_number"
            )
        )

    def membership(self, paper_number, job=None):
        return AnswerMembership.objects.get(
            job=job or self.job, paper__paper_number=paper_number
        )

    def messages_of(self, response):
        return [str(m) for m in response.context["messages"]]


class PermissionTest(ViewTestCase):
    def test_anonymous_users_are_sent_to_log_in(self):
        anonymous = Client()
        for path in page_urls(self.job.pk):
            response = anonymous.get(path)
            self.assertEqual(response.status_code, 302, path)
            self.assertIn(settings.LOGIN_URL, response["Location"], path)
        for path in action_urls(self.job.pk):
            response = anonymous.post(path, {})
            self.assertEqual(response.status_code, 302, path)
            self.assertIn(settings.LOGIN_URL, response["Location"], path)

    def test_markers_are_refused(self):
        marker = Client()
        marker.force_login(self.marker)
        for path in page_urls(self.job.pk):
            self.assertEqual(marker.get(path).status_code, 403, path)
        for path in action_urls(self.job.pk):
            self.assertEqual(marker.post(path, {}).status_code, 403, path)
        self.assertEqual(ClusteringJob.objects.count(), 1)

    def test_managers_get_every_page(self):
        for path in page_urls(self.job.pk):
            response = self.client.get(path)
            if path == url("preview"):  # no rectangle given: a readable 400
                self.assertEqual(response.status_code, 400)
                self.assertContains(response, "Draw the answer box", status_code=400)
            else:
                self.assertEqual(response.status_code, 200, path)

    def test_every_post_needs_the_csrf_token(self):
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(self.manager)
        for path in action_urls(self.job.pk):
            self.assertEqual(strict.post(path, {}).status_code, 403, path)
        self.job.refresh_from_db()
        self.assertEqual(self.job.revision, 0)
        self.assertEqual(ClusteringJob.objects.count(), 1)
        # The page's own token works.
        strict.get(url("job", self.job.pk))
        token = strict.cookies[settings.CSRF_COOKIE_NAME].value
        response = strict.post(
            url("reset", self.job.pk), {"revision": 0, "csrfmiddlewaretoken": token}
        )
        self.assertEqual(response.status_code, 302)
        self.job.refresh_from_db()
        self.assertEqual(self.job.revision, 1)

    def test_unknown_jobs_are_404(self):
        for path in page_urls(999)[4:] + action_urls(999)[1:]:
            method = self.client.post if path in action_urls(999) else self.client.get
            self.assertEqual(method(path, {}).status_code, 404, path)


class LandingTest(ViewTestCase):
    def test_lists_questions_with_versions_pages_and_jobs(self):
        response = self.client.get(url("home"))
        self.assertContains(response, "New job: version 1")
        self.assertContains(response, "9 papers scanned")
        self.assertContains(response, "pages")  # question 1's pages are listed
        self.assertContains(response, url("job", self.job.pk))
        self.assertContains(response, self.job.message)
        # Nothing runs: the list does not poll.
        self.assertNotContains(response, "data-poll-url")

    def test_the_list_polls_while_a_job_runs(self):
        running = ClusteringJob.objects.create(
            question_index=1,
            version=1,
            page_number=3,
            kind="mcq",
            status=HueyTaskTracker.RUNNING,
            stage="cropping",
            done=3,
            total=9,
            **self.rect,
        )
        response = self.client.get(url("jobs_fragment"))
        self.assertContains(response, f'data-poll-url="{url("jobs_fragment")}"')
        self.assertContains(response, 'hx-trigger="every 2s"')
        self.assertContains(response, "cropping: 3 / 9")
        self.assertContains(response, url("cancel", running.pk))

    def test_plom_tools_page_gets_a_clustering_card(self):
        with override_settings(TEMPLATES=templates_with_override()):
            response = self.client.get(reverse("tools_landing"))
        self.assertContains(response, "Rectangle extraction")  # Plom's own cards stay
        self.assertContains(response, 'id="plom-clustering-card"')
        self.assertContains(response, url("home"))


class NewJobTest(ViewTestCase):
    def test_region_conversion_from_whole_image_to_qr_box(self):
        geometry = regions.page_geometry(1, 3)
        box = geometry.qr_box
        whole = [
            (box["left"] + self.rect["left"] * (box["right"] - box["left"]))
            / geometry.width,
            (box["top"] + self.rect["top"] * (box["bottom"] - box["top"]))
            / geometry.height,
            (box["left"] + self.rect["right"] * (box["right"] - box["left"]))
            / geometry.width,
            (box["top"] + self.rect["bottom"] * (box["bottom"] - box["top"]))
            / geometry.height,
        ]
        converted = regions.whole_image_to_qr_rect(whole, geometry)
        for edge in regions.EDGES:
            self.assertAlmostEqual(converted[edge], self.rect[edge], places=6)

    def test_the_page_starts_from_plom_question_region(self):
        response = self.client.get(url("new_job"), {"question": 1, "version": 1})
        self.assertEqual(response.status_code, 200)
        self.assertNotIn("left", response.context["form"].initial)  # none set
        self.assertContains(response, reverse("reference_image", args=[1, 3]))
        geometry = regions.page_geometry(1, 3)
        box = geometry.qr_box
        whole = [
            (box["left"] + 0.5 * (box["right"] - box["left"])) / geometry.width,
            (box["top"] + 0.1 * (box["bottom"] - box["top"])) / geometry.height,
            (box["left"] + 0.9 * (box["right"] - box["left"])) / geometry.width,
            (box["top"] + 0.2 * (box["bottom"] - box["top"])) / geometry.height,
        ]
        QuestionRegionsService.set_question_regions(1, 3, whole)
        response = self.client.get(url("new_job"), {"question": 1, "version": 1})
        initial = response.context["form"].initial
        self.assertEqual([initial[e] for e in regions.EDGES], [0.5, 0.1, 0.9, 0.2])
        self.assertEqual(len(response.context["preview"].crops), 6)

    def test_a_page_not_of_the_question_is_refused(self):
        response = self.client.get(
            url("new_job"), {"question": 1, "version": 1, "page": 1}
        )
        self.assertContains(response, "Question 1 is on page(s) 3")

    def test_preview_crops_six_random_scanned_papers_and_suggests_a_kind(self):
        params = {"question": 1, "version": 1, "page": 3, **self.rect}
        response = self.client.get(url("preview"), params)
        preview = response.context["preview"]
        self.assertEqual(len(preview.crops), 6)
        self.assertTrue(
            all(c.data_url.startswith("data:image/png") for c in preview.crops)
        )
        self.assertTrue({c.paper_number for c in preview.crops} <= set(range(1, 10)))
        self.assertEqual(preview.suggested_kind, ClusteringJob.HME)  # "x+1" is wide
        self.assertContains(response, 'data-suggested-kind="hme"')
        again = self.client.get(url("preview"), params).context["preview"]
        self.assertEqual(
            [c.paper_number for c in again.crops],
            [c.paper_number for c in preview.crops],
        )  # same seed, same papers

    def test_preview_refuses_an_empty_box(self):
        params = {"question": 1, "version": 1, **self.rect, "right": 0.1}
        response = self.client.get(url("preview"), params)
        self.assertContains(response, "answer rectangle is empty", status_code=400)

    def test_starting_a_job_redirects_to_it(self):
        data = {"question": 1, "version": 1, "page": 3, "kind": "mcq", **self.rect}
        response = self.client.post(url("new_job"), data)
        job = ClusteringJob.objects.exclude(pk=self.job.pk).get()
        self.assertRedirects(response, url("job", job.pk))
        self.assertEqual((job.kind, job.created_by), ("mcq", self.manager))
        self.assertAlmostEqual(job.left, self.rect["left"])
        self.assertEqual(job.status, HueyTaskTracker.COMPLETE)  # Huey is immediate

    def test_bad_requests_are_refused_readably_and_start_nothing(self):
        base = {"question": 1, "version": 1, "page": 3, **self.rect}
        response = self.client.post(url("new_job"), base)  # no kind
        self.assertContains(response, "This field is required", status_code=400)
        response = self.client.post(
            url("new_job"), {**base, "kind": "mcq", "bottom": self.rect["top"]}
        )
        self.assertContains(response, "Draw the answer box", status_code=400)
        response = self.client.post(url("new_job"), {**base, "kind": "mcq", "page": 4})
        self.assertContains(response, "Question 1 is on page(s) 3", status_code=400)
        self.assertEqual(ClusteringJob.objects.count(), 1)

    def test_the_preview_button_previews_without_starting(self):
        data = {"question": 1, "version": 1, "page": 3, "preview": "", **self.rect}
        response = self.client.post(url("new_job"), data)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(len(response.context["preview"].crops), 6)
        self.assertEqual(ClusteringJob.objects.count(), 1)
        first = [c.paper_number for c in response.context["preview"].crops]
        response = self.client.post(url("new_job"), {**data, "reseed": "", "seed": 0})
        self.assertEqual(response.context["seed"], 1)
        self.assertNotEqual(
            [c.paper_number for c in response.context["preview"].crops], first
        )


class JobLifecycleViewsTest(ViewTestCase):
    def running_job(self):
        return ClusteringJob.objects.create(
            question_index=1,
            version=1,
            page_number=3,
            kind="hme",
            status=HueyTaskTracker.RUNNING,
            stage="embedding",
            done=4,
            total=9,
            **self.rect,
        )

    def test_progress_of_a_running_job_polls(self):
        job = self.running_job()
        response = self.client.get(url("job", job.pk))
        self.assertContains(response, 'value="4"')
        self.assertContains(response, "embedding: 4 / 9")
        self.assertContains(response, f"{url('job_progress', job.pk)}?reload=1")
        fragment = self.client.get(url("job_progress", job.pk), {"reload": 1})
        self.assertFalse(fragment.has_header("HX-Refresh"))
        self.assertNotContains(fragment, "<html")

    def test_a_finished_job_tells_its_page_to_reload(self):
        response = self.client.get(url("job_progress", self.job.pk), {"reload": 1})
        self.assertEqual(response["HX-Refresh"], "true")
        self.assertNotContains(response, "data-poll-url")

    def test_cancel(self):
        job = self.running_job()
        response = self.client.post(url("cancel", job.pk), follow=True)
        self.assertRedirects(response, url("job", job.pk))
        self.assertEqual(
            self.messages_of(response), [f"Job {job.pk} is being cancelled."]
        )
        job.refresh_from_db()
        self.assertTrue(job.cancel_requested)
        response = self.client.post(url("cancel", self.job.pk), follow=True)
        self.assertIn("nothing to cancel", self.messages_of(response)[0])

    def test_a_failed_job_shows_its_error_and_can_be_retried(self):
        failed = ClusteringJob.objects.create(
            question_index=1,
            version=1,
            page_number=3,
            kind="mcq",
            status=HueyTaskTracker.ERROR,
            message="The job failed: OSError: disk full",
            **self.rect,
        )
        page = self.client.get(url("job", failed.pk))
        self.assertContains(page, "disk full")
        self.assertContains(page, url("retry", failed.pk))
        response = self.client.post(url("retry", failed.pk))
        retry = ClusteringJob.objects.order_by("-pk").first()
        self.assertRedirects(
            response, url("job", retry.pk), fetch_redirect_response=False
        )
        self.assertEqual(
            (retry.kind, retry.rect, retry.page_number), ("mcq", failed.rect, 3)
        )
        self.assertEqual(retry.status, HueyTaskTracker.COMPLETE)

    def test_delete_confirms_what_goes_and_keeps_scans(self):
        self.client.get(url("thumbnail", self.job.pk, 1))
        self.assertTrue(thumbnails.thumbnails_dir(self.job.pk).exists())
        page = self.client.get(url("delete", self.job.pk))
        self.assertContains(page, "No scans, marks, annotations or other tags")
        self.assertContains(page, "grouping of 10 answers")
        response = self.client.post(url("delete", self.job.pk))
        self.assertRedirects(response, url("home"), fetch_redirect_response=False)
        self.assertFalse(ClusteringJob.objects.filter(pk=self.job.pk).exists())
        self.assertFalse(AnswerCluster.objects.exists())
        self.assertEqual(Paper.objects.count(), 10)
        self.assertFalse(thumbnails.thumbnails_dir(self.job.pk).exists())

    def test_a_running_job_cannot_be_deleted(self):
        job = self.running_job()
        response = self.client.post(url("delete", job.pk), follow=True)
        self.assertIn("cancel it before deleting", self.messages_of(response)[0])
        self.assertTrue(ClusteringJob.objects.filter(pk=job.pk).exists())


class ReviewPageTest(ViewTestCase):
    def test_clusters_largest_first_and_the_bins(self):
        response = self.client.get(url("job", self.job.pk))
        page = response.context["review"]
        self.assertEqual([card.size for card in page.cards], [3, 3, 2])
        self.assertEqual([m.paper.paper_number for m in page.blank_bin], [9])
        (problem,) = page.problems
        self.assertEqual(problem.paper.paper_number, 10)
        self.assertContains(response, "Page 3 of paper 10 is not scanned")
        self.assertContains(response, url("thumbnail", self.job.pk, 1))
        self.assertContains(response, 'loading="lazy"')
        self.assertContains(response, 'name="revision" value="0"')
        self.assertContains(response, "Not published")
        # Which model grouped them, now that the version can be pinned.
        self.assertTrue(self.job.model_name)
        self.assertContains(
            response, f"grouped by {self.job.model_name} v{self.job.model_version}"
        )

    def test_thumbnails_are_cut_once_then_served_from_disk(self):
        response = self.client.get(url("thumbnail", self.job.pk, 2))
        self.assertEqual(response["Content-Type"], "image/png")
        self.assertTrue(b"".join(response.streaming_content).startswith(b"\x89PNG"))
        cached = list(thumbnails.thumbnails_dir(self.job.pk).glob("2-*.png"))
        self.assertEqual(len(cached), 1)
        self.assertTrue(str(cached[0]).startswith(str(settings.MEDIA_ROOT)))
        with mock.patch.object(
            thumbnails, "RectangleExtractor", side_effect=AssertionError("recropped")
        ):
            again = self.client.get(url("thumbnail", self.job.pk, 2))
            self.assertEqual(again.status_code, 200)
            # Consuming the stream closes the file through the test client, which keeps
            # the test's database connection open (a bare close() would shut it).
            self.assertTrue(b"".join(again.streaming_content).startswith(b"\x89PNG"))

    def test_thumbnails_of_unscanned_or_foreign_papers_are_404(self):
        self.assertEqual(
            self.client.get(url("thumbnail", self.job.pk, 10)).status_code, 404
        )
        self.assertEqual(
            self.client.get(url("thumbnail", self.job.pk, 99)).status_code, 404
        )


class ReviewActionsTest(ViewTestCase):
    def test_move_to_a_cluster_then_to_a_new_one(self):
        a, b, c = self.clusters()
        moving = self.members(a)[0]
        response = self.client.post(
            url("move", self.job.pk),
            {"answers": [moving.pk], "to_cluster": b.pk, "revision": 0},
            follow=True,
        )
        self.assertRedirects(response, url("job", self.job.pk))
        self.assertIn(f"Moved 1 answer to {b.name}.", self.messages_of(response))
        moving.refresh_from_db()
        self.assertEqual(moving.cluster, b)
        two = [m.pk for m in self.members(c)]
        self.client.post(
            url("move", self.job.pk),
            {"answers": two, "to_cluster": "new", "new_name": "odd", "revision": 1},
        )
        new = AnswerCluster.objects.get(job=self.job, name="odd")
        self.assertEqual({m.pk for m in self.members(new)}, set(two))

    def test_htmx_gets_the_fragment_back(self):
        a, b, _ = self.clusters()
        moving = self.members(a)[0]
        response = self.htmx_post(
            url("move", self.job.pk),
            {"answers": [moving.pk], "to_cluster": b.pk, "revision": 0},
        )
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, "<html")
        self.assertContains(response, 'id="review"')
        self.assertContains(response, 'name="revision" value="1"')
        self.assertContains(response, f"Moved 1 answer to {b.name}.")

    def test_merge_goes_into_the_largest(self):
        a, b, c = self.clusters()
        self.client.post(
            url("merge", self.job.pk), {"clusters": [c.pk, a.pk], "revision": 0}
        )
        self.assertEqual(len(self.members(a)), 5)
        self.assertEqual(self.members(c), [])

    def test_split(self):
        a, b, _ = self.clusters()
        self.client.post(
            url("merge", self.job.pk), {"clusters": [a.pk, b.pk], "revision": 0}
        )
        response = self.client.post(
            url("split", self.job.pk), {"cluster": a.pk, "revision": 1}, follow=True
        )
        self.assertIn("Split g", self.messages_of(response)[-1])
        self.assertEqual(
            sorted(len(self.members(x)) for x in self.clusters()), [2, 3, 3]
        )

    def test_rename_and_a_readable_refusal(self):
        a, b, _ = self.clusters()
        self.client.post(
            url("rename", self.job.pk),
            {"cluster": a.pk, "name": "x plus one", "revision": 0},
        )
        a.refresh_from_db()
        self.assertEqual(a.name, "x plus one")
        response = self.htmx_post(
            url("rename", self.job.pk),
            {"cluster": b.pk, "name": "x plus one", "revision": 1},
        )
        self.assertContains(
            response,
            "Another cluster is already called &#x27;x plus one&#x27;",
            status_code=400,
        )
        response = self.client.post(
            url("rename", self.job.pk),
            {"cluster": b.pk, "name": "<b>bold</b>", "revision": 1},
            follow=True,
        )
        self.assertContains(response, "&lt;b&gt;bold&lt;/b&gt;")  # escaped

    def test_review_bin_then_accept_the_suggestion(self):
        a = self.clusters()[0]
        member = self.members(a)[0]
        self.client.post(
            url("to_bin", self.job.pk), {"answers": [member.pk], "revision": 0}
        )
        member.refresh_from_db()
        self.assertEqual(member.state, AnswerMembership.LOW_CONFIDENCE)
        page = self.client.get(url("job", self.job.pk))
        self.assertContains(page, "Review bin")
        self.assertContains(page, f"looks like <strong>{a.name}</strong>")
        self.client.post(
            url("accept", self.job.pk), {"answers": [member.pk], "revision": 1}
        )
        member.refresh_from_db()
        self.assertEqual((member.cluster, member.state), (a, AnswerMembership.ANSWERED))

    def test_a_blank_box_can_join_a_cluster(self):
        a = self.clusters()[0]
        blank = self.membership(9)
        self.client.post(
            url("move", self.job.pk),
            {"answers": [blank.pk], "to_cluster": a.pk, "revision": 0},
        )
        blank.refresh_from_db()
        self.assertEqual(blank.cluster, a)

    def test_reset(self):
        a, b, _ = self.clusters()
        self.client.post(
            url("merge", self.job.pk), {"clusters": [a.pk, b.pk], "revision": 0}
        )
        self.client.post(url("reset", self.job.pk), {"revision": 1})
        self.assertEqual(
            sorted(len(self.members(x)) for x in self.clusters()), [2, 3, 3]
        )

    def test_invalid_edits_are_refused_with_a_reason(self):
        a = self.clusters()[0]
        other = jobs.start_job(question_index=1, version=1, rect=self.rect, kind="mcq")
        foreign = AnswerMembership.objects.filter(job=other).first()
        cases = [
            ({"to_cluster": a.pk, "revision": 0}, "Select at least one answer first."),
            ({"answers": [self.membership(1).pk], "revision": 0}, "Choose the cluster"),
            (
                {"answers": [foreign.pk], "to_cluster": a.pk, "revision": 0},
                f"Some of those answers are not part of job {self.job.pk}.",
            ),
            (
                {
                    "answers": [self.membership(10).pk],
                    "to_cluster": a.pk,
                    "revision": 0,
                },
                "Paper 10 has no readable answer (not scanned)",
            ),
            (
                {
                    "answers": [self.membership(1).pk],
                    "to_cluster": other.clusters.first().pk,
                    "revision": 0,
                },
                "is not part of job",
            ),
            (
                {"answers": ["x"], "to_cluster": a.pk, "revision": 0},
                "not valid ids",
            ),
            ({"answers": [self.membership(1).pk], "to_cluster": a.pk}, "out of date"),
        ]
        for data, message in cases:
            response = self.htmx_post(url("move", self.job.pk), data)
            self.assertContains(
                response, message, status_code=400, msg_prefix=str(data)
            )
        response = self.client.post(
            url("merge", self.job.pk), {"clusters": [a.pk], "revision": 0}, follow=True
        )
        self.assertIn("Choose at least two clusters", self.messages_of(response)[0])
        self.job.refresh_from_db()
        self.assertEqual(self.job.revision, 0)

    def test_the_second_of_two_managers_is_told_and_nothing_is_lost(self):
        a, b, c = self.clusters()
        second = Client()
        second.force_login(self.other_manager)
        # Both loaded the page at revision 0; the first merges.
        self.client.post(
            url("merge", self.job.pk), {"clusters": [a.pk, b.pk], "revision": 0}
        )
        after_first = sorted(
            AnswerMembership.objects.filter(job=self.job).values_list("pk", "cluster")
        )
        moving = self.members(c)[0]
        response = self.htmx_post(
            url("move", self.job.pk),
            {"answers": [moving.pk], "to_cluster": b.pk, "revision": 0},
            client=second,
        )
        self.assertContains(
            response, "Someone else changed these groups", status_code=409
        )
        response = second.post(
            url("rename", self.job.pk),
            {"cluster": c.pk, "name": "mine", "revision": 0},
            follow=True,
        )
        self.assertIn(
            "Someone else changed these groups", self.messages_of(response)[0]
        )
        self.assertEqual(
            sorted(
                AnswerMembership.objects.filter(job=self.job).values_list(
                    "pk", "cluster"
                )
            ),
            after_first,
        )
        c.refresh_from_db()
        self.assertNotEqual(c.name, "mine")
        # Reloaded, the second manager sees revision 1 and can edit.
        self.assertEqual(response.context["job"].revision, 1)

    def test_edits_of_an_unfinished_job_are_refused(self):
        running = ClusteringJob.objects.create(
            question_index=1,
            version=1,
            page_number=3,
            kind="hme",
            status=HueyTaskTracker.RUNNING,
            **self.rect,
        )
        response = self.htmx_post(url("reset", running.pk), {"revision": 0})
        self.assertContains(response, "nothing to edit", status_code=400)


class PublishViewsTest(ViewTestCase):
    def test_the_plan_names_each_tag_and_its_tasks(self):
        response = self.client.get(url("publish", self.job.pk))
        rows = response.context["rows"]
        self.assertEqual([count for _, _, count in rows], [3, 3, 2])
        self.assertEqual(response.context["task_count"], 8)
        for text, _, _ in rows:
            self.assertTrue(text.startswith("cl_q1_"))
            self.assertContains(response, f"<code>{text}</code>")

    def test_publish_with_priority_then_unpublish(self):
        response = self.client.post(
            url("publish", self.job.pk), {"revision": 0, "priority": "on"}, follow=True
        )
        self.assertIn(
            "Published 3 tags on 8 marking tasks and marking priority.",
            self.messages_of(response),
        )
        self.assertContains(response, "Published</strong>")
        self.job.refresh_from_db()
        self.assertTrue(self.job.is_published and self.job.published_priority)
        tags = MarkingTaskTag.objects.filter(text__startswith="cl_q1_")
        self.assertEqual(sum(t.task.count() for t in tags), 8)
        # An edit after publishing shows in the banner.
        a = self.clusters()[0]
        self.client.post(
            url("rename", self.job.pk),
            {"cluster": a.pk, "name": "first", "revision": 0},
        )
        self.assertContains(
            self.client.get(url("job", self.job.pk)), "Changed since published"
        )
        self.client.post(url("unpublish", self.job.pk))
        self.job.refresh_from_db()
        self.assertFalse(self.job.is_published)
        self.assertFalse(
            MarkingTaskTag.objects.filter(text__startswith="cl_q1_").exists()
        )

    def test_a_plan_shown_before_an_edit_is_not_published(self):
        a = self.clusters()[0]
        self.client.post(
            url("rename", self.job.pk),
            {"cluster": a.pk, "name": "first", "revision": 0},
        )
        response = self.htmx_post(url("publish", self.job.pk), {"revision": 0})
        self.assertContains(response, "The groups changed since", status_code=409)
        self.job.refresh_from_db()
        self.assertFalse(self.job.is_published)

    def test_unpublishing_an_unpublished_job_says_so(self):
        response = self.client.post(url("unpublish", self.job.pk), follow=True)
        self.assertIn("is not published", self.messages_of(response)[0])


class CleanupTest(TestCase):
    def test_deleting_thumbnails_only_touches_the_job_folder(self):
        folder = thumbnails.thumbnails_dir(424242)
        folder.mkdir(parents=True)
        (folder / "1-1.png").write_bytes(b"x")
        neighbour = thumbnails.thumbnails_dir(424243)
        neighbour.mkdir(parents=True)
        self.addCleanup(shutil.rmtree, neighbour, True)
        thumbnails.delete_thumbnails(424242)
        self.assertFalse(folder.exists())
        self.assertTrue(neighbour.exists())


class NoSpecTest(TestCase):
    """Before the exam is specified the pages say so instead of failing."""

    @classmethod
    def setUpTestData(cls):
        AuthService.create_groups()
        cls.manager = User.objects.create_user("manager", password="manager")
        cls.manager.groups.add(Group.objects.get(name="manager"))

    def test_pages_explain_there_is_nothing_to_cluster(self):
        self.client.force_login(self.manager)
        for path in (url("home"), url("new_job")):
            self.assertContains(self.client.get(path), "no exam specification yet")
        response = self.client.get(url("preview"), {"question": 1})
        self.assertContains(response, "no exam specification yet", status_code=400)
