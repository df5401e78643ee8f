# SPDX-License-Identifier: AGPL-3.0-or-later
"""The job page: progress while it runs, then the review of its groups and the edits.

Every edit is a plain form POST that goes back to the page with a message; htmx, when
present, sends the same POST and swaps in the re-rendered review fragment instead.
The revision the page was rendered with travels with every edit, so that of two
managers editing at once the second is told (409) rather than silently overwriting.
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from plom_server.Base.base_group_views import ManagerRequiredView
from plom_server.Base.models import HueyTaskTracker

from ..forms import (
    AnswersForm,
    ClusterForm,
    ClustersForm,
    EditForm,
    MoveForm,
    RenameForm,
    first_error,
)
from ..models import AnswerMembership, ClusteringJob
from ..services import review
from ..services.errors import JobError
from .common import get_job, refuse
from .jobs import describe
from .review_page import review_page

FRAGMENT = "plom_clustering_plugin/fragments/review.html"


def review_context(job: ClusteringJob) -> dict:
    """What the review page and its fragment render."""
    return {"job": job, "review": review_page(job)}


class JobView(ManagerRequiredView):
    """A job: its progress until it is complete, then the review of its groups."""

    def get(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Render the progress page or the review page."""
        job = get_job(job_pk)
        context = self.build_context()
        if job.status != HueyTaskTracker.COMPLETE:
            describe(job)
            context.update(job=job, polling=job.active and not job.stale)
            return render(request, "plom_clustering_plugin/job.html", context)
        context.update(review_context(job))
        return render(request, "plom_clustering_plugin/review.html", context)


class EditView(ManagerRequiredView):
    """One review edit: check the form, call the service, answer."""

    form_class: type[Form] = EditForm

    def apply(self, job: ClusteringJob, data: dict) -> str:
        """Make the change through the review service; return what was done."""
        raise NotImplementedError

    def post(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        """Apply the edit; htmx gets the new fragment, a plain post a redirect."""
        job = get_job(job_pk)
        back = reverse("plom_clustering:job", args=[job.pk])
        form = self.form_class(request.POST)
        if not form.is_valid():
            return refuse(request, first_error(form), 400, back)
        try:
            done = self.apply(job, form.cleaned_data)
        except review.StaleEdit as err:
            return refuse(request, str(err), 409, back)
        except JobError as err:
            return refuse(request, str(err), 400, back)
        messages.success(request, done)
        if request.htmx:
            job.refresh_from_db()
            return render(request, FRAGMENT, review_context(job))
        return redirect(back)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


class MoveView(EditView):
    """Move selected answers to a cluster or to a new one."""

    form_class = MoveForm

    def apply(self, job: ClusteringJob, data: dict) -> str:
        """Move."""
        target = review.move(
            job.pk,
            data["answers"],
            to_cluster=data["to_cluster"],
            new_name=data["new_name"] or None,
            revision=data["revision"],
        )
        return f"Moved {_count(len(data['answers']), 'answer')} to {target.name}."


class MergeView(EditView):
    """Merge the ticked clusters into the largest of them."""

    form_class = ClustersForm

    def apply(self, job: ClusteringJob, data: dict) -> str:
        """Merge."""
        sizes = dict(
            AnswerMembership.objects.filter(job=job, cluster__in=data["clusters"])
            .values("cluster")
            .annotate(n=Count("pk"))
            .values_list("cluster", "n")
        )
        ordered = sorted(data["clusters"], key=lambda pk: -sizes.get(pk, 0))
        target = review.merge(job.pk, ordered, revision=data["revision"])
        return f"Merged {_count(len(ordered), 'cluster')} into {target.name}."


class SplitView(EditView):
    """Cut one cluster into the groups the machine sees inside it."""

    form_class = ClusterForm

    def apply(self, job: ClusteringJob, data: dict) -> str:
        """Split."""
        parts = review.split(job.pk, data["cluster"], revision=data["revision"])
        return f"Split {parts[0].name} into {', '.join(p.name for p in parts)}."


class RenameView(EditView):
    """Rename one cluster (its tag follows when published)."""

    form_class = RenameForm

    def apply(self, job: ClusteringJob, data: dict) -> str:
        """Rename."""
        cluster = review.rename(
            job.pk, data["cluster"], data["name"], revision=data["revision"]
        )
        return f"Renamed the cluster to {cluster.name}."


class AcceptView(EditView):
    """Put review-bin answers into their suggested clusters."""

    form_class = AnswersForm

    def apply(self, job: ClusteringJob, data: dict) -> str:
        """Accept."""
        n = review.accept_suggestions(
            job.pk, data["answers"], revision=data["revision"]
        )
        return f"Placed {_count(n, 'answer')} in the suggested cluster."


class ToBinView(EditView):
    """Take answers out of their clusters into the review bin."""

    form_class = AnswersForm

    def apply(self, job: ClusteringJob, data: dict) -> str:
        """Bin."""
        n = review.to_bin(job.pk, data["answers"], revision=data["revision"])
        return f"Put {_count(n, 'answer')} in the review bin."


class ResetView(EditView):
    """Undo every edit: back to the machine's groups and names."""

    def apply(self, job: ClusteringJob, data: dict) -> str:
        """Reset."""
        review.reset(job.pk, revision=data["revision"])
        return "Restored the machine's groups and names."
