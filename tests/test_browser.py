# SPDX-License-Identifier: AGPL-3.0-or-later
"""The instructor's path in a real browser: log in, start a job by drawing the box,
review (select, move, merge), publish; without Plom's downloaded JavaScript (as here,
offline) and with htmx present.  Screenshots go to artifacts/screenshots/ (or
$PLOM_CLUSTERING_SCREENSHOTS).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import django_htmx
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import override_settings
from plom_server.Authentication.services import AuthService
from plom_server.Base.models import HueyTaskTracker
from plom_server.Mark.models import MarkingTaskTag

from plom_clustering_plugin.models import AnswerMembership, ClusteringJob
from plom_clustering_plugin.services import jobs, review

from .browser_helpers import BrowserTestCase
from .exam_fixtures import three_answer_exam
from .test_views import templates_with_override

PASSWORD = "a-manager-password"
#: django-htmx ships the same htmx 2.0.x that Plom's setup downloads.
HTMX = Path(django_htmx.__file__).parent / "static/django_htmx/htmx-2.min.js"


def sizes(job) -> list[int]:
    """Sizes of the job's non-empty clusters, largest first."""
    counts = {}
    for cluster_pk in AnswerMembership.objects.filter(
        job=job, cluster__isnull=False
    ).values_list("cluster", flat=True):
        counts[cluster_pk] = counts.get(cluster_pk, 0) + 1
    return sorted(counts.values(), reverse=True)


@override_settings(TEMPLATES=templates_with_override())
class InstructorPathTest(BrowserTestCase):
    """No htmx, Alpine or Bootstrap (Plom downloads them at setup; offline they are
    missing): plain forms, our vanilla scripts."""

    def test_start_review_and_publish(self):
        exam, _ = three_answer_exam(9, blanks=(9,), manager_password=PASSWORD)
        page = self.new_page()
        self.log_in(page, "manager", PASSWORD)
        self.assertEqual(page.evaluate("typeof window.htmx"), "undefined")

        # Entry: Plom's Tools page has our card.
        page.goto(f"{self.live_server_url}/progress/tools_landing/")
        self.shot(page, "01-tools")
        with page.expect_navigation():
            page.click("#plom-clustering-card a")
        self.shot(page, "02-landing")
        with page.expect_navigation():
            page.click("text=New job: version 1")

        # Draw the answer box on the reference page.
        page.wait_for_function(
            "document.getElementById('clu-reference').naturalWidth > 0"
        )
        geometry = page.evaluate("""() => {
                const area = document.getElementById('clu-draw');
                const r = document.getElementById('clu-reference').getBoundingClientRect();
                return {x: r.left, y: r.top, shown: r.width, ...area.dataset};
            }""")
        rect = exam.answer_rects[1]
        scale = geometry["shown"] / float(geometry["width"])
        qr = {
            k: float(geometry[f"qr{k.title()}"])
            for k in ("left", "top", "right", "bottom")
        }

        def on_screen(fx, fy):
            x = qr["left"] + fx * (qr["right"] - qr["left"])
            y = qr["top"] + fy * (qr["bottom"] - qr["top"])
            return geometry["x"] + x * scale, geometry["y"] + y * scale

        page.mouse.move(*on_screen(rect["left"], rect["top"]))
        page.mouse.down()
        page.mouse.move(*on_screen(rect["right"], rect["bottom"]), steps=8)
        page.mouse.up()
        for edge in ("left", "top", "right", "bottom"):
            drawn = float(page.input_value(f"input[name={edge}]"))
            self.assertAlmostEqual(drawn, rect[edge], delta=0.01, msg=edge)
        self.assertTrue(page.is_visible(".clu-box"))
        # The live preview: the printed box and six papers, and the suggested kind.
        page.wait_for_function(
            "document.querySelectorAll('#clu-preview figure img').length === 7"
        )
        self.assertTrue(page.is_checked("input[name=kind][value=hme]"))
        # Typing the exact box moves the drawing too.
        for edge in ("left", "top", "right", "bottom"):
            page.fill(f"input[name={edge}]", f"{rect[edge]:.4f}")
        self.shot(page, "03-new-job")
        with page.expect_navigation():
            page.click("#start-job")
        job = ClusteringJob.objects.get()
        self.assertEqual(job.status, HueyTaskTracker.COMPLETE)
        self.assertAlmostEqual(job.left, rect["left"], places=3)
        self.assertEqual(sizes(job), [3, 3, 2])
        self.assertIn(f"/clustering/job/{job.pk}/", page.url)
        page.wait_for_function(
            "Array.from(document.querySelectorAll('.clu-answer img'))"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        self.shot(page, "04-review")

        # Selecting: a click ticks one, shift-click a range, "all" a whole cluster.
        cards = page.locator("section.clu-cluster")
        first = cards.nth(0).locator(".clu-answer-label img")
        first.nth(0).click()
        first.nth(2).click(modifiers=["Shift"])
        self.assertEqual(page.text_content("[data-selected-count]"), "3 selected")
        page.click("#all-" + cards.nth(2).get_attribute("id").split("-")[1])
        self.assertEqual(page.text_content("[data-selected-count]"), "5 selected")
        page.goto(page.url)  # a fresh page: nothing ticked
        self.assertEqual(page.text_content("[data-selected-count]"), "0 selected")

        # Move one answer of the first cluster to the second.
        source_pk = int(cards.nth(0).get_attribute("id").split("-")[1])
        target_pk = int(cards.nth(1).get_attribute("id").split("-")[1])
        moving = int(
            cards.nth(0).locator("input[data-answer]").nth(0).get_attribute("value")
        )
        cards.nth(0).locator(".clu-answer-label img").nth(0).click()
        page.select_option("select[name=to_cluster]", str(target_pk))
        with page.expect_navigation():
            page.click("#move-button")
        self.assertEqual(AnswerMembership.objects.get(pk=moving).cluster_id, target_pk)
        self.assertIn("Moved 1 answer to", page.text_content(".clu-messages"))
        self.shot(page, "05-moved")

        # Merge the two smallest clusters.
        job.refresh_from_db()
        self.assertEqual(job.revision, 1)
        self.assertEqual(sizes(job), [4, 2, 2])
        ids = [int(cards.nth(i).get_attribute("id").split("-")[1]) for i in (1, 2)]
        for pk in ids:
            page.check(f"input[name=clusters][value='{pk}']")
        with page.expect_navigation():
            page.click("#merge-button")
        self.assertEqual(sizes(job), [4, 4])
        self.assertIn("Merged 2 clusters", page.text_content(".clu-messages"))
        # Equal sizes: the first ticked (the emptied source cluster) takes the other.
        self.assertEqual(ids[0], source_pk)
        self.assertEqual(
            AnswerMembership.objects.filter(cluster_id=source_pk).count(), 4
        )
        self.shot(page, "06-merged")

        # Publish with priority, after reading the plan.
        with page.expect_navigation():
            page.click("#publish-link")
        plan = page.text_content("#publish-plan")
        self.assertIn("2 tags", plan)
        self.assertIn("8 tasks", plan)
        self.shot(page, "07-publish-plan")
        page.check("#id_priority")
        with page.expect_navigation():
            page.click("#publish-button")
        job.refresh_from_db()
        self.assertTrue(job.is_published)
        self.assertTrue(job.published_priority)
        tags = MarkingTaskTag.objects.filter(text__startswith="cl_q1_")
        self.assertEqual(sorted(t.task.count() for t in tags), [4, 4])
        self.assertIn("Published", page.text_content("#publish-banner"))
        self.shot(page, "08-published")

    def test_a_running_job_page_follows_progress_without_htmx(self):
        AuthService.create_groups()
        manager = User.objects.create_user("manager", password=PASSWORD)
        manager.groups.add(Group.objects.get(name="manager"))
        job = ClusteringJob.objects.create(
            question_index=1,
            version=1,
            page_number=3,
            kind="hme",
            left=0.5,
            top=0.1,
            right=0.9,
            bottom=0.2,
            status=HueyTaskTracker.RUNNING,
            stage="cropping",
            done=1,
            total=3,
        )
        page = self.new_page()
        self.log_in(page, "manager", PASSWORD)
        page.goto(f"{self.live_server_url}/clustering/job/{job.pk}/")
        self.assertIn("cropping: 1 / 3", page.text_content(".clu-progress-box"))
        self.shot(page, "09-running")
        ClusteringJob.objects.filter(pk=job.pk).update(done=2)
        page.wait_for_function(
            "document.querySelector('.clu-progress-box').textContent.includes('2 / 3')"
        )
        # The worker fails: the page reloads by itself and shows why.
        ClusteringJob.objects.filter(pk=job.pk).update(
            status=HueyTaskTracker.ERROR, message="The job failed: out of memory"
        )
        page.wait_for_selector("text=The job failed: out of memory")
        self.assertTrue(page.is_visible("text=Retry"))
        self.shot(page, "10-failed")


@override_settings(TEMPLATES=templates_with_override())
class HtmxPathTest(BrowserTestCase):
    """With htmx present (Plom's setup downloads it; here django-htmx's copy of the
    same 2.0.x is put where Plom's base template loads it): edits swap the fragment in
    place, and a stale edit shows Plom's error alert with the 409 message."""

    def setUp(self):
        super().setUp()
        target = Path(settings.PLOM_BASE_DIR) / "plom_extra_static/js3rdparty/htmx.js"
        if target.exists():
            self.skipTest("a real htmx.js is installed; not touching it")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HTMX, target)
        self.addCleanup(target.unlink)

    def test_edits_swap_in_place_and_the_loser_of_a_race_is_told(self):
        exam, _ = three_answer_exam(6, manager_password=PASSWORD)
        job = jobs.start_job(
            question_index=1, version=1, rect=exam.answer_rects[1], kind="hme"
        )
        second = User.objects.create_user("manager2", password=PASSWORD)
        second.groups.add(Group.objects.get(name="manager"))
        page = self.new_page()
        self.log_in(page, "manager", PASSWORD)
        page.goto(f"{self.live_server_url}/clustering/job/{job.pk}/")
        self.assertEqual(page.evaluate("typeof window.htmx"), "object")
        page.evaluate("window.notReloaded = true")

        cards = page.locator("section.clu-cluster")
        target_pk = int(cards.nth(1).get_attribute("id").split("-")[1])
        moving = int(
            cards.nth(0).locator("input[data-answer]").nth(0).get_attribute("value")
        )
        cards.nth(0).locator(".clu-answer-label img").nth(0).click()
        self.assertEqual(page.text_content("[data-selected-count]"), "1 selected")
        page.select_option("select[name=to_cluster]", str(target_pk))
        page.click("#move-button")
        page.wait_for_selector("text=Moved 1 answer to")
        self.assertTrue(page.evaluate("window.notReloaded === true"))
        self.assertEqual(AnswerMembership.objects.get(pk=moving).cluster_id, target_pk)
        self.assertEqual(page.get_attribute("#review", "data-revision"), "1")
        self.assertEqual(page.text_content("[data-selected-count]"), "0 selected")
        self.shot(page, "11-htmx-moved")

        # To the review bin (a button with formaction), then accept the suggestion (a
        # button outside its form): both through htmx too.
        binned = int(
            cards.nth(0).locator("input[data-answer]").nth(0).get_attribute("value")
        )
        cards.nth(0).locator(".clu-answer-label img").nth(0).click()
        page.click("text=To review bin")
        page.wait_for_selector("#review-bin")
        self.assertEqual(
            AnswerMembership.objects.get(pk=binned).state,
            AnswerMembership.LOW_CONFIDENCE,
        )
        page.click("#review-bin button:has-text('Accept')")
        page.wait_for_selector("text=Placed 1 answer in the suggested cluster.")
        self.assertEqual(
            AnswerMembership.objects.get(pk=binned).state, AnswerMembership.ANSWERED
        )
        self.assertEqual(page.get_attribute("#review", "data-revision"), "3")

        # Another manager renames a cluster meanwhile; this page still shows revision 3.
        other = job.clusters.exclude(pk=target_pk).first()
        review.rename(job.pk, other.pk, "theirs", revision=3)
        before = sorted(
            AnswerMembership.objects.filter(job=job).values_list("pk", "cluster")
        )
        for i in (0, 1):
            page.locator("section.clu-cluster input[name=clusters]").nth(i).check()
        page.click("#merge-button")
        alert = page.wait_for_selector("#plomHtmxErrorHandler .alert")
        self.assertIn("Someone else changed these groups", alert.text_content())
        self.assertEqual(
            sorted(
                AnswerMembership.objects.filter(job=job).values_list("pk", "cluster")
            ),
            before,
        )
        self.assertTrue(page.evaluate("window.notReloaded === true"))
        self.shot(page, "12-htmx-stale-edit")
        page.reload()
        self.assertRegex(page.content(), re.compile(r'value="theirs"'))
