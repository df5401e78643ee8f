# SPDX-License-Identifier: AGPL-3.0-or-later
"""Hand the groups to markers as tags (and optionally priority), or take them back."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from plom_server.Base.base_group_views import ManagerRequiredView

from ..forms import PublishForm, first_error
from ..services import publish
from ..services.errors import JobError, StaleEdit
from .common import get_job, refuse


class PublishView(ManagerRequiredView):
    """Show exactly which tags go on how many tasks (GET), then publish (POST)."""

    def get(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Render the plan."""
        job = get_job(job_pk)
        try:
            plan = publish.plan(job)
        except JobError as err:
            return refuse(request, str(err), 400, reverse("plom_clustering:home"))
        rows = [
            (text, plan.cluster_of_tag[text], len(tasks))
            for text, tasks in sorted(plan.tags.items(), key=lambda kv: -len(kv[1]))
        ]
        context = self.build_context()
        context.update(
            job=job,
            rows=rows,
            task_count=plan.task_count,
            form=PublishForm(
                initial={"revision": job.revision, "priority": job.published_priority}
            ),
        )
        return render(request, "plom_clustering_plugin/publish.html", context)

    def post(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Publish what the plan showed, unless the groups changed since."""
        job = get_job(job_pk)
        here = reverse("plom_clustering:publish", args=[job.pk])
        form = PublishForm(request.POST)
        if not form.is_valid():
            return refuse(request, first_error(form), 400, here)
        try:
            plan = publish.publish(
                job,
                request.user,
                priority=form.cleaned_data["priority"],
                revision=form.cleaned_data["revision"],
            )
        except StaleEdit:
            return refuse(
                request,
                "The groups changed since this plan was shown; nothing was published."
                " Check the new plan below, then publish again.",
                409,
                here,
            )
        except JobError as err:
            return refuse(request, str(err), 400, here)
        extra = " and marking priority" if form.cleaned_data["priority"] else ""
        messages.success(
            request,
            f"Published {len(plan.tags)} tags on {plan.task_count} marking tasks{extra}.",
        )
        return redirect("plom_clustering:job", job_pk=job.pk)


class UnpublishView(ManagerRequiredView):
    """Remove exactly the tags (and priorities) publishing added."""

    def post(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Unpublish, then go back to the job."""
        job = get_job(job_pk)
        if not job.is_published:
            return refuse(
                request,
                f"Job {job.pk} is not published: nothing to remove.",
                400,
                reverse("plom_clustering:job", args=[job.pk]),
            )
        removed = publish.unpublish(job)
        messages.success(
            request, f"Unpublished: removed {removed} tags from marking tasks."
        )
        return redirect("plom_clustering:job", job_pk=job.pk)
