# SPDX-License-Identifier: AGPL-3.0-or-later
"""Small helpers the views share: find a job, answer an action, go back safely."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme

from ..models import ClusteringJob


def get_job(pk: int) -> ClusteringJob:
    """The job, or a 404 page."""
    return get_object_or_404(ClusteringJob, pk=pk)


def safe_next(request: HttpRequest, default: str) -> str:
    """The ``next`` field when it points into this site, else ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def refuse(request: HttpRequest, message: str, status: int, back: str) -> HttpResponse:
    """Tell the user why nothing was done.

    htmx requests get the message as the body of a 4xx answer, which Plom's htmx error
    handler shows; plain form posts go back to the page with the message.
    """
    if request.htmx:
        # Plom's handler inserts the body as HTML: escape names users typed.
        body = escape(message)
        if status == 409:
            body += f' <a href="{escape(back)}">Reload the page</a>'
        return HttpResponse(body, status=status)
    messages.error(request, message)
    return redirect(back)
