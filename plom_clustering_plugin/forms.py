# SPDX-License-Identifier: AGPL-3.0-or-later
"""Forms of the instructor's pages: what each page or action accepts, checked."""

from __future__ import annotations

from django import forms
from plom_server.Papers.services import SpecificationService

from .models import ClusteringJob

#: The value of the "move to" choice that makes a new cluster.
NEW_CLUSTER = "new"
#: Rectangle edges are typed as decimals (fractions of the QR-code box).
EDGE_WIDGET = forms.NumberInput(
    attrs={"step": "any", "class": "form-control form-control-sm clu-edge"}
)
SELECT = forms.Select(attrs={"class": "form-select form-select-sm"})


class IdListField(forms.Field):
    """Several ids sent under one name (checkboxes): a list of positive ints."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": "Those answers or clusters are not valid ids."}

    def to_python(self, value) -> list[int]:
        """Turn the submitted strings into ints."""
        try:
            ids = [int(v) for v in value or []]
        except (TypeError, ValueError) as err:
            raise forms.ValidationError(self.error_messages["invalid"]) from err
        if any(i <= 0 for i in ids):
            raise forms.ValidationError(self.error_messages["invalid"])
        return list(dict.fromkeys(ids))  # keep order, drop repeats


class QuestionPageForm(forms.Form):
    """Which question, version and page (the new-job page's chooser)."""

    question = forms.TypedChoiceField(coerce=int, label="Question", widget=SELECT)
    version = forms.TypedChoiceField(coerce=int, label="Version", widget=SELECT)
    page = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="Page", widget=SELECT
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pages = SpecificationService.get_question_pages()
        labels = dict(SpecificationService.get_question_index_label_pairs())
        self.fields["question"].choices = [
            (q, labels.get(q, f"Q{q}")) for q in sorted(self.pages)
        ]
        self.fields["version"].choices = [
            (v, f"Version {v}") for v in SpecificationService.get_list_of_versions()
        ]
        every_page = range(1, SpecificationService.get_n_pages() + 1)
        self.fields["page"].choices = [(p, f"Page {p}") for p in every_page]

    def clean(self) -> dict:
        """Default the page to the question's first; refuse a page not of the question."""
        data = super().clean()
        question, page = data.get("question"), data.get("page")
        if question is None:
            return data
        if page is None:
            data["page"] = self.pages[question][0]
        elif page not in self.pages[question]:
            self.add_error(
                "page",
                f"Question {question} is on page(s)"
                f" {', '.join(map(str, self.pages[question]))}.",
            )
        return data

    def limit_pages(self) -> None:
        """Offer only the chosen question's pages (after a valid clean)."""
        pages = self.pages[self.cleaned_data["question"]]
        self.fields["page"].choices = [(p, f"Page {p}") for p in pages]


class NewJobForm(QuestionPageForm):
    """Start a job: where the answer box is and what kind of answers it holds."""

    left = forms.FloatField(label="Left", widget=EDGE_WIDGET)
    top = forms.FloatField(label="Top", widget=EDGE_WIDGET)
    right = forms.FloatField(label="Right", widget=EDGE_WIDGET)
    bottom = forms.FloatField(label="Bottom", widget=EDGE_WIDGET)
    kind = forms.ChoiceField(
        choices=ClusteringJob.KIND_CHOICES,
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
        label="The answers are",
    )

    def clean(self) -> dict:
        """Refuse an empty rectangle."""
        data = super().clean()
        edges = [data.get(k) for k in ("left", "top", "right", "bottom")]
        if None not in edges:
            left, top, right, bottom = edges
            if right <= left or bottom <= top:
                raise forms.ValidationError(
                    "Draw the answer box: its right edge must be right of its left edge"
                    " and its bottom below its top."
                )
        return data

    @property
    def rect(self) -> dict[str, float]:
        """The cleaned rectangle."""
        return {k: self.cleaned_data[k] for k in ("left", "top", "right", "bottom")}


class RectForm(QuestionPageForm):
    """A rectangle to preview (all optional: no rectangle, no preview)."""

    left = forms.FloatField(required=False)
    top = forms.FloatField(required=False)
    right = forms.FloatField(required=False)
    bottom = forms.FloatField(required=False)
    seed = forms.IntegerField(required=False, min_value=0)

    @property
    def rect(self) -> dict[str, float] | None:
        """The rectangle if all four edges were given, else None."""
        edges = {
            k: self.cleaned_data.get(k) for k in ("left", "top", "right", "bottom")
        }
        return None if None in edges.values() else edges


class EditForm(forms.Form):
    """Every review edit carries the revision the page was rendered with."""

    revision = forms.IntegerField(
        min_value=0,
        widget=forms.HiddenInput,
        error_messages={
            "required": "This page is out of date: reload it and try again.",
        },
    )


class AnswersForm(EditForm):
    """Selected answers (move, review bin, accept)."""

    answers = IdListField(
        required=True, error_messages={"required": "Select at least one answer first."}
    )


class MoveForm(AnswersForm):
    """Move selected answers to a cluster, or to a new one."""

    to_cluster = forms.CharField(
        error_messages={"required": "Choose the cluster to move the answers to."}
    )
    new_name = forms.CharField(required=False, max_length=64)

    def clean_to_cluster(self) -> int | None:
        """A cluster id, or None for a new cluster."""
        value = self.cleaned_data["to_cluster"].strip()
        if value == NEW_CLUSTER:
            return None
        try:
            return int(value)
        except ValueError as err:
            raise forms.ValidationError(
                "Choose the cluster to move the answers to."
            ) from err


class ClustersForm(EditForm):
    """Selected clusters (merge)."""

    clusters = IdListField(
        required=True,
        error_messages={"required": "Tick at least two clusters to merge."},
    )


class ClusterForm(EditForm):
    """One cluster (split)."""

    cluster = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class RenameForm(ClusterForm):
    """One cluster's new name."""

    name = forms.CharField(max_length=64, required=False, strip=True)


class PublishForm(forms.Form):
    """Publish the groups as tags, optionally with marking priority."""

    revision = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    priority = forms.BooleanField(
        required=False,
        label="Also set marking priority, so that markers get one cluster after another"
        " (largest first)",
    )


def first_error(form: forms.Form) -> str:
    """The first error of a form, as one sentence for the user."""
    for errors in form.errors.values():
        for error in errors:
            return str(error)
    return "That request is not valid."
