# SPDX-License-Identifier: AGPL-3.0-or-later
"""Start a job: pick question and version, draw the answer box, preview, choose kind."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from plom_server.Base.base_group_views import ManagerRequiredView
from plom_server.Papers.services import SpecificationService

from ..forms import NewJobForm, QuestionPageForm, RectForm
from ..services import jobs, regions
from ..services.errors import JobError

TEMPLATE = "plom_clustering_plugin/new_job.html"


def _chooser(data) -> QuestionPageForm:
    """The question/version/page chooser, defaulting to the first of each."""
    form = QuestionPageForm(data)
    if not data.get("question"):
        first_q = form.fields["question"].choices[0][0]
        first_v = form.fields["version"].choices[0][0]
        form = QuestionPageForm({"question": first_q, "version": first_v})
    return form


def _where(chooser: QuestionPageForm) -> tuple[int, int, int]:
    """Question, version and page of a valid chooser."""
    return tuple(chooser.cleaned_data[k] for k in ("question", "version", "page"))


def _page_context(
    chooser: QuestionPageForm, rect: dict[str, float] | None, seed: int
) -> dict:
    """The chooser, the reference page's geometry and, given a rectangle, the preview."""
    context = {"chooser": chooser, "seed": seed, "rect": rect}
    if not chooser.is_valid():
        return context
    chooser.limit_pages()
    q, v, page = _where(chooser)
    context.update(question=q, version=v, page=page)
    context["question_label"] = SpecificationService.get_question_label(q)
    try:
        context["geometry"] = regions.page_geometry(v, page)
    except JobError as err:
        context["page_error"] = str(err)
        return context
    if rect is not None:
        try:
            context["preview"] = regions.preview(q, v, page, rect, seed=seed)
        except JobError as err:
            context["preview_error"] = str(err)
    return context


def _seed(request: HttpRequest) -> int:
    """The preview's seed; "other papers" moves to the next one."""
    try:
        seed = max(int(request.POST.get("seed", 0)), 0)
    except ValueError:
        seed = 0
    return seed + 1 if "reseed" in request.POST else seed


class NewJobView(ManagerRequiredView):
    """The new-job page (GET), and starting the job or previewing (POST)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        """Show the reference page with Plom's question region, if any, drawn."""
        context = self.build_context()
        if not SpecificationService.is_there_a_spec():
            return render(request, TEMPLATE, {**context, "no_spec": True})
        chooser = _chooser(request.GET)
        rect = regions.default_rect(*_where(chooser)) if chooser.is_valid() else None
        context.update(_page_context(chooser, rect, seed=0))
        initial = {k: round(x, 4) for k, x in (rect or {}).items()}
        if "preview" in context:
            initial["kind"] = context["preview"].suggested_kind
        context["form"] = NewJobForm(initial=initial)
        return render(request, TEMPLATE, context)

    def post(self, request: HttpRequest) -> HttpResponse:
        """Start the job (then show it), or show the page again with a preview."""
        context = self.build_context()
        if not SpecificationService.is_there_a_spec():
            return render(request, TEMPLATE, {**context, "no_spec": True}, status=400)
        chooser = _chooser(request.POST)
        seed = _seed(request)
        if "preview" in request.POST or "reseed" in request.POST:
            rect_form = RectForm(request.POST)
            rect = rect_form.rect if rect_form.is_valid() else None
            context.update(_page_context(chooser, rect, seed))
            initial = request.POST.dict()
            if "preview" in context and "kind" not in initial:
                initial["kind"] = context["preview"].suggested_kind
            context["form"] = NewJobForm(
                initial=initial
            )  # a preview is no failed start
            return render(request, TEMPLATE, context)
        form = NewJobForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                job = jobs.start_job(
                    question_index=data["question"],
                    version=data["version"],
                    page_number=data["page"],
                    rect=form.rect,
                    kind=data["kind"],
                    user=request.user,
                )
            except JobError as err:
                form.add_error(None, str(err))
            else:
                messages.success(request, f"Started clustering job {job.pk}.")
                return redirect("plom_clustering:job", job_pk=job.pk)
        rect = form.rect if not form.errors.keys() & set(regions.EDGES) else None
        context.update(_page_context(chooser, rect, seed), form=form)
        return render(request, TEMPLATE, context, status=400)


class PreviewView(ManagerRequiredView):
    """The live preview under the rectangle: crops of a few papers and a suggested kind."""

    def get(self, request: HttpRequest) -> HttpResponse:
        """Render the preview fragment (400 with the reason when it cannot be cut)."""
        template = "plom_clustering_plugin/fragments/preview.html"
        if not SpecificationService.is_there_a_spec():
            error = "There is no exam specification yet."
            return render(request, template, {"preview_error": error}, status=400)
        form = RectForm(request.GET)
        if not form.is_valid() or form.rect is None:
            error = "Draw the answer box (or type its edges) to see a preview."
            return render(request, template, {"preview_error": error}, status=400)
        data = form.cleaned_data
        try:
            preview = regions.preview(
                data["question"],
                data["version"],
                data["page"],
                form.rect,
                seed=data.get("seed") or 0,
            )
        except JobError as err:
            return render(request, template, {"preview_error": str(err)}, status=400)
        return render(request, template, {"preview": preview})
