# SPDX-License-Identifier: AGPL-3.0-or-later
"""A job's progress, and cancelling, retrying and deleting jobs."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from plom_server.Base.base_group_views import ManagerRequiredView

from ..services import jobs, thumbnails
from ..services.errors import JobError
from .common import get_job, refuse, safe_next


def describe(job) -> None:
    """Attach what the progress fragment shows (stale, active) to a job."""
    job.stale = jobs.is_stale(job)
    job.active = job.status in jobs.ACTIVE


class JobProgressView(ManagerRequiredView):
    """A job's status and progress bar, polled while it runs."""

    def get(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Render the fragment; ask the job page to reload once the job has ended."""
        job = get_job(job_pk)
        describe(job)
        response = render(
            request,
            "plom_clustering_plugin/fragments/job_progress.html",
            {"job": job, "polling": job.active and not job.stale},
        )
        if request.GET.get("reload") and not job.active:
            response["HX-Refresh"] = "true"  # the job page becomes the review page
        return response


class CancelJobView(ManagerRequiredView):
    """Stop a queued or running job."""

    def post(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Cancel, then go back."""
        job = get_job(job_pk)
        back = safe_next(request, reverse("plom_clustering:job", args=[job.pk]))
        try:
            jobs.cancel_job(job)
        except JobError as err:
            return refuse(request, str(err), 400, back)
        messages.success(request, f"Job {job.pk} is being cancelled.")
        return redirect(back)


class RetryJobView(ManagerRequiredView):
    """Start a new job with a finished job's question, box and kind."""

    def post(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Start the new job and show it."""
        old = get_job(job_pk)
        back = safe_next(request, reverse("plom_clustering:job", args=[old.pk]))
        try:
            job = jobs.start_job(
                question_index=old.question_index,
                version=old.version,
                page_number=old.page_number,
                rect=old.rect,
                kind=old.kind,
                user=request.user,
                parameters=old.parameters,
            )
        except JobError as err:
            return refuse(request, str(err), 400, back)
        messages.success(request, f"Started job {job.pk}, a retry of job {old.pk}.")
        return redirect("plom_clustering:job", job_pk=job.pk)


class DeleteJobView(ManagerRequiredView):
    """Confirm (GET), then delete a job's groups (POST); scans and marks stay."""

    def get(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Say exactly what will be deleted."""
        job = get_job(job_pk)
        describe(job)
        context = self.build_context()
        context.update(
            job=job,
            clusters=job.clusters.count(),
            answers=job.memberships.count(),
            tagged_tasks=job.published_links.values("task").distinct().count(),
        )
        return render(request, "plom_clustering_plugin/delete_job.html", context)

    def post(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Delete, then go to the landing page."""
        job = get_job(job_pk)
        pk = job.pk
        try:
            jobs.delete_job(job)
        except JobError as err:
            return refuse(
                request, str(err), 400, reverse("plom_clustering:job", args=[pk])
            )
        thumbnails.delete_thumbnails(pk)
        messages.success(request, f"Deleted clustering job {pk} and its groups.")
        return redirect("plom_clustering:home")
