# SPDX-License-Identifier: AGPL-3.0-or-later
"""Where on the exam a job can cluster: questions, pages, the answer box, a preview.

Rectangles here are Plom's QR-relative fractions (0 and 1 are the centres of the
reference page's QR codes, y grows downwards), the system ``RectangleExtractor`` and
the jobs use.  Plom's question regions are stored as fractions of the whole reference
image instead; :func:`whole_image_to_qr_rect` converts them.
"""

from __future__ import annotations

import base64
import io
import random
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Count
from PIL import Image
from plom_server.Papers.models import FixedPage, ReferenceImage
from plom_server.Papers.services import SpecificationService
from plom_server.Preparation.services.question_regions import QuestionRegionsService
from plom_server.Rectangles.services import get_reference_rectangle_for_page

from ..ml.preprocess import prepare
from ..models import ClusteringJob
from .crops import CropSource
from .errors import JobError

#: How many scanned papers the new-job page previews.
PREVIEW_COUNT = 6
#: Written answers whose ink is at most this many times wider than tall look like
#: single letters; wider ones like expressions.
LETTER_MAX_ASPECT = 1.3
#: Boxes at most this many times wider than tall suit one letter (used when the
#: preview shows no writing).
LETTER_BOX_MAX_ASPECT = 2.0
EDGES = ("left", "top", "right", "bottom")


@dataclass(frozen=True)
class QuestionInfo:
    """A question as the landing page lists it."""

    index: int
    label: str
    pages: list[int]
    versions: list[int]
    scanned: dict[int, int]  # version -> papers with this question scanned

    @property
    def version_counts(self) -> list[tuple[int, int]]:
        """``(version, scanned papers)`` pairs, for templates."""
        return [(v, self.scanned.get(v, 0)) for v in self.versions]


@dataclass(frozen=True)
class PageGeometry:
    """The reference page a rectangle is drawn on, in reference pixels."""

    width: int
    height: int
    qr_box: dict[str, float]  # left/top/right/bottom of the QR-centre box


@dataclass(frozen=True)
class PreviewCrop:
    """One paper's crop (a PNG data URL) or why there is none."""

    paper_number: int
    data_url: str = ""
    problem: str = ""


@dataclass
class Preview:
    """What the new-job page shows under the rectangle."""

    template: str = ""  # the printed box, cut from the reference page
    crops: list[PreviewCrop] = field(default_factory=list)
    suggested_kind: str = ClusteringJob.HME
    reason: str = ""

    @property
    def suggested_label(self) -> str:
        """The suggested kind in the user's words."""
        return dict(ClusteringJob.KIND_CHOICES)[self.suggested_kind]


def questions() -> list[QuestionInfo]:
    """Every question of the spec with its pages, versions and scanned papers.

    Returns an empty list when there is no spec yet.
    """
    if not SpecificationService.is_there_a_spec():
        return []
    pages = SpecificationService.get_question_pages()
    versions = SpecificationService.get_list_of_versions()
    scanned: dict[tuple[int, int], int] = {
        (row["question_index"], row["version"]): row["papers"]
        for row in FixedPage.objects.filter(
            page_type=FixedPage.QUESTIONPAGE, image__isnull=False
        )
        .values("question_index", "version")
        .annotate(papers=Count("paper", distinct=True))
    }
    return [
        QuestionInfo(
            index=qidx,
            label=label,
            pages=pages[qidx],
            versions=versions,
            scanned={v: scanned.get((qidx, v), 0) for v in versions},
        )
        for qidx, label in SpecificationService.get_question_index_label_pairs()
    ]


def page_geometry(version: int, page: int) -> PageGeometry:
    """Size and QR-centre box of a reference page.

    Raises:
        JobError: that page has no reference image (its source was never uploaded).
    """
    ref = ReferenceImage.objects.filter(version=version, page_number=page).first()
    if ref is None:
        raise JobError(
            f"There is no reference image of version {version} page {page}:"
            " upload that version's source PDF first."
        )
    return PageGeometry(
        width=ref.width,
        height=ref.height,
        qr_box=get_reference_rectangle_for_page(page, version=version),
    )


def whole_image_to_qr_rect(
    rect: list[float], geometry: PageGeometry
) -> dict[str, float]:
    """Convert ``[xmin, ymin, xmax, ymax]`` fractions of the whole image to QR fractions."""
    box = geometry.qr_box
    xmin, ymin, xmax, ymax = (float(x) for x in rect)
    width = box["right"] - box["left"]
    height = box["bottom"] - box["top"]
    return {
        "left": (xmin * geometry.width - box["left"]) / width,
        "top": (ymin * geometry.height - box["top"]) / height,
        "right": (xmax * geometry.width - box["left"]) / width,
        "bottom": (ymax * geometry.height - box["top"]) / height,
    }


def default_rect(question: int, version: int, page: int) -> dict[str, float] | None:
    """Plom's question region for that page as QR fractions, or None when none is set.

    A region set for this version wins over one set for every version.
    """
    candidates = [
        r
        for r in QuestionRegionsService.get_question_regions()
        if r.get("qidx") == question
        and r.get("page") == page
        and r.get("version") in (None, version)
    ]
    if not candidates:
        return None
    region = max(candidates, key=lambda r: r.get("version") is not None)
    try:
        geometry = page_geometry(version, page)
    except JobError:
        return None
    return whole_image_to_qr_rect(region["rect"], geometry)


def _png_data_url(image: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(np.asarray(image)).convert("L").save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def preview(
    question: int,
    version: int,
    page: int,
    rect: dict[str, float],
    *,
    count: int = PREVIEW_COUNT,
    seed: int = 0,
) -> Preview:
    """Crop the rectangle from a few random scanned papers and suggest a kind.

    Args:
        question: question index.
        version: version.
        page: page holding the answer box.
        rect: QR-relative fractions.
        count: how many papers.
        seed: picks the papers (the same seed shows the same papers while the
            rectangle is adjusted).

    Raises:
        JobError: the rectangle or the page cannot be cropped.
    """
    try:
        source = CropSource(question, version, page, rect)
        template = source.reference_crop()
    except (KeyError, ValueError) as err:
        raise JobError(f"Cannot crop that region: {err}") from err
    scanned = list(
        source.fixed_pages()
        .filter(image__isnull=False)
        .values_list("paper__paper_number", flat=True)
        .distinct()
    )
    chosen = sorted(random.Random(seed).sample(scanned, min(count, len(scanned))))
    result = Preview(template=_png_data_url(template))
    images = []
    for paper_number in chosen:
        try:
            crop = source.extractor.get_cropped_scanned_img_or_none(paper_number, rect)
        except Exception as err:  # a missing or corrupt file must not break the page
            result.crops.append(PreviewCrop(paper_number, problem=f"unreadable: {err}"))
            continue
        if crop is None:
            result.crops.append(PreviewCrop(paper_number, problem="too few QR codes"))
            continue
        images.append(crop)
        result.crops.append(PreviewCrop(paper_number, data_url=_png_data_url(crop)))
    result.suggested_kind, result.reason = suggest_kind(images, template)
    return result


def suggest_kind(images: list[np.ndarray], template: np.ndarray) -> tuple[str, str]:
    """Guess letter or math expression from the shape of the written ink.

    Returns:
        The kind and a short reason for the instructor.
    """
    aspects = []
    for image in images:
        prepared = prepare(image, template)
        if prepared.bbox is not None:
            top, left, bottom, right = prepared.bbox
            aspects.append((right - left) / max(bottom - top, 1))
    if aspects:
        aspect = float(np.median(aspects))
        if aspect <= LETTER_MAX_ASPECT:
            return ClusteringJob.MCQ, (
                f"the answers are compact (about {aspect:.1f} times as wide as tall),"
                " like single letters"
            )
        return ClusteringJob.HME, (
            f"the answers are wide (about {aspect:.1f} times as wide as tall),"
            " like expressions"
        )
    height, width = template.shape[:2]
    aspect = width / max(height, 1)
    if aspect <= LETTER_BOX_MAX_ASPECT:
        return (
            ClusteringJob.MCQ,
            "no writing in the preview; the box is small and square",
        )
    return ClusteringJob.HME, "no writing in the preview; the box is wide"
