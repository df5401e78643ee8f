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
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from plom_server.Papers.models import FixedPage
from plom_server.Rectangles.services import RectangleExtractor

# Plom's own geometry, so our crops are pixel-identical to RectangleExtractor's
# (plom is pinned to 0.22.x, where these helpers live).
from plom_server.Rectangles.services.rectangle import (
    _get_affine_transf_matrix_ref_to_QR_target as ref_to_scan_affine,
)
from plom_server.Rectangles.services.rectangle import (
    _get_perspective_transform_scan_to_ref as scan_to_ref_perspective,
)

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
            crop = self.crop_image(fixed_page.image)
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

    def crop_image(self, image) -> np.ndarray | None:
        """Cut the rectangle out of one pushed page image, or None if < 3 QR codes.

        The same pixels as ``RectangleExtractor.get_cropped_scanned_img_or_none``, about
        three times faster: the EXIF orientation is read by Pillow (in C) instead of the
        pure-Python ``exif`` package, and there is no PNG round trip.
        """
        ex = self.extractor
        region = (ex.LEFT, ex.TOP, ex.RIGHT, ex.BOTTOM)
        to_scan = ref_to_scan_affine(region, image.parsed_qr)
        if to_scan is None:
            return None
        width, height = ex.RIGHT - ex.LEFT, ex.BOTTOM - ex.TOP
        rect = {
            "left": ex.LEFT + self.rect["left"] * width,
            "right": ex.LEFT + self.rect["right"] * width,
            "top": ex.TOP + self.rect["top"] * height,
            "bottom": ex.TOP + self.rect["bottom"] * height,
        }
        to_ref = scan_to_ref_perspective(rect, to_scan)
        size = (
            round(rect["right"] - rect["left"]),
            round(rect["bottom"] - rect["top"]),
        )
        scan = load_upright(Path(image.baseimage.image_file.path), image.rotation)
        return cv2.warpPerspective(scan, to_ref, size)


#: EXIF orientation -> counter-clockwise degrees that make the image upright, as Plom
#: reads them (plom.scan.rotate); other orientations are refused there too.
EXIF_ROTATION = {None: 0, 1: 0, 3: 180, 6: -90, 8: 90}


def load_upright(path: Path, rotation: int) -> np.ndarray:
    """A page image as an RGB array, EXIF orientation and Plom's rotation applied."""
    with Image.open(path) as img:
        angle = 0
        # Plom applies EXIF only to files named .jpg/.jpeg (case-sensitive there).
        if path.suffix in (".jpg", ".jpeg"):
            orientation = img.getexif().get(0x0112)
            if orientation not in EXIF_ROTATION:
                raise NotImplementedError(f"Unexpected EXIF orientation: {orientation}")
            angle = EXIF_ROTATION[orientation]
        img = img.convert("RGB")
        if angle:
            img = img.rotate(angle, expand=True)
        if rotation:
            img = img.rotate(rotation, expand=True)
        return np.asarray(img)
