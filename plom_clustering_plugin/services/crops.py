# SPDX-License-Identifier: AGPL-3.0-or-later
"""The Plom adapter for crops: which papers have the page, their crops, the reference crop.

Every way a paper can fail to give a crop is turned into an :class:`AnswerProblem`
(not scanned, too few QR codes, missing or corrupt image file) so that one bad page
never stops a job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from plom_server.Papers.models import FixedPage
from plom_server.Rectangles.services import RectangleExtractor

from ..ml.pipeline import NOT_SCANNED, UNREADABLE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerProblem:
    """Why a paper has no usable crop, in words an instructor understands."""

    state: str
    message: str


class CropSource:
    """Crops of one answer rectangle on one (question, version, page)."""

    def __init__(
        self, question_index: int, version: int, page: int, rect: dict[str, float]
    ) -> None:
        """Set up the extractor.

        Raises:
            ValueError: there is no reference image for that version and page (the
                source PDF was never uploaded), or the rectangle is empty.
        """
        if not (rect["right"] > rect["left"] and rect["bottom"] > rect["top"]):
            raise ValueError(
                "The answer rectangle is empty: its right edge must be right of its left"
                " edge and its bottom below its top."
            )
        self.question_index = question_index
        self.version = version
        self.page = page
        self.rect = rect
        self.extractor = RectangleExtractor(version, page)

    def fixed_pages(self):
        """The question's fixed pages of this version and page, one per paper."""
        return (
            FixedPage.objects.filter(
                page_type=FixedPage.QUESTIONPAGE,
                question_index=self.question_index,
                version=self.version,
                page_number=self.page,
            )
            .select_related("paper", "image", "image__baseimage")
            .order_by("paper__paper_number")
        )

    def paper_count(self) -> int:
        """How many papers have this question on this page in this version."""
        return self.fixed_pages().values("paper").distinct().count()

    def reference_crop(self) -> np.ndarray:
        """The rectangle cut from the blank reference page (the printed template)."""
        return self.extractor.get_cropped_ref_img(self.rect)

    def crops(self) -> Iterator[tuple[object, np.ndarray | AnswerProblem]]:
        """Yield ``(paper, crop or problem)`` for every paper with that page."""
        seen: set[int] = set()
        for fixed_page in self.fixed_pages():
            paper = fixed_page.paper
            if paper.pk in seen:  # shared pages have one row per question
                continue
            seen.add(paper.pk)
            yield paper, self._crop(paper.paper_number, fixed_page)

    def _crop(self, paper_number: int, fixed_page) -> np.ndarray | AnswerProblem:
        if fixed_page.image is None:
            return AnswerProblem(
                NOT_SCANNED, f"Page {self.page} of paper {paper_number} is not scanned."
            )
        try:
            crop = self.extractor.get_cropped_scanned_img_or_none(
                paper_number, self.rect
            )
        except Exception as err:  # missing file, corrupt image, ...: never fatal
            log.warning("crop of paper %s failed: %s", paper_number, err)
            return AnswerProblem(
                UNREADABLE,
                f"The scan of page {self.page} of paper {paper_number} could not be"
                f" read ({type(err).__name__}: {err}).",
            )
        if crop is None:
            return AnswerProblem(
                UNREADABLE,
                f"Too few QR codes were read on page {self.page} of paper"
                f" {paper_number} to locate the answer box; rescan the page.",
            )
        return crop
