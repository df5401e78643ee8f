# SPDX-License-Identifier: AGPL-3.0-or-later
"""The landing page: questions with their versions and pages, and their jobs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from plom_server.Base.base_group_views import ManagerRequiredView

from ..models import ClusteringJob
from ..services import regions
from .jobs import describe


def jobs_context() -> dict:
    """Questions, each with its jobs (newest first), and whether to keep polling."""
    questions = regions.questions()
    # Every job is listed: upstream's debug URL marks all trackers obsolete.
    every_job = list(ClusteringJob.objects.select_related("created_by"))
    by_question: dict[int, list[ClusteringJob]] = {}
    for job in every_job:
        describe(job)
        by_question.setdefault(job.question_index, []).append(job)
    sections = [(q, by_question.pop(q.index, [])) for q in questions]
    orphans = [job for rows in by_question.values() for job in rows]
    polling = any(job.active and not job.stale for job in every_job)
    return {"sections": sections, "orphans": orphans, "polling": polling}


class HomeView(ManagerRequiredView):
    """Where the instructor starts: what can be clustered and what has been."""

    def get(self, request: HttpRequest) -> HttpResponse:
        """Render the page."""
        context = self.build_context()
        context.update(jobs_context())
        return render(request, "plom_clustering_plugin/jobs.html", context)


class JobsFragmentView(ManagerRequiredView):
    """The questions-and-jobs part of the landing page, polled while jobs run."""

    def get(self, request: HttpRequest) -> HttpResponse:
        """Render the fragment."""
        return render(
            request, "plom_clustering_plugin/fragments/jobs.html", jobs_context()
        )
