# SPDX-License-Identifier: AGPL-3.0-or-later
"""Views (thin: the logic lives in services)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from plom_server.Base.base_group_views import ManagerRequiredView

from .models import ClusteringJob


class JobListView(ManagerRequiredView):
    """The plugin's landing page: every clustering job."""

    def get(self, request: HttpRequest) -> HttpResponse:
        """List jobs, newest first."""
        context = self.build_context()
        context["jobs"] = ClusteringJob.objects.filter(obsolete=False)
        return render(request, "plom_clustering_plugin/jobs.html", context)
