# SPDX-License-Identifier: AGPL-3.0-or-later
"""Answer thumbnails for the review page (manager-only, cached on disk)."""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from plom_server.Base.base_group_views import ManagerRequiredView

from ..models import AnswerMembership
from ..services import thumbnails
from .common import get_job


class ThumbnailView(ManagerRequiredView):
    """One paper's answer box, small."""

    def get(self, request: HttpRequest, job_pk: int, paper_number: int) -> HttpResponse:
        """Serve the PNG, cropping it on first request."""
        job = get_job(job_pk)
        get_object_or_404(AnswerMembership, job=job, paper__paper_number=paper_number)
        try:
            path = thumbnails.thumbnail(job, paper_number)
        except thumbnails.ThumbnailUnavailable as err:
            raise Http404(str(err)) from err
        response = FileResponse(path.open("rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=600"
        return response
