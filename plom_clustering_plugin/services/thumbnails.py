# SPDX-License-Identifier: AGPL-3.0-or-later
"""Small images of each answer for the review page, cropped once and kept on disk.

A thumbnail is cut from the scan by Plom's ``RectangleExtractor`` on first request and
saved under ``<MEDIA_ROOT>/plom_clustering/thumbs/<job>/``.  Its file name carries the
scan's image id, so a rescanned page gets a new thumbnail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from PIL import Image
from plom_server.Papers.models import FixedPage
from plom_server.Rectangles.services import RectangleExtractor

from ..models import ClusteringJob
from .errors import JobError
from .regions import page_geometry

#: Thumbnails fit in this many pixels (width, height); crops are never enlarged.
MAX_SIZE = (240, 96)


class ThumbnailUnavailable(Exception):
    """This paper has no image to show for the job (not scanned, unreadable)."""


def thumbnails_dir(job_pk: int) -> Path:
    """The folder holding one job's thumbnails."""
    return Path(settings.MEDIA_ROOT) / "plom_clustering" / "thumbs" / str(job_pk)


def thumbnail_size(job: ClusteringJob) -> tuple[int, int] | None:
    """The (width, height) of the job's thumbnails (crops share one size), if known."""
    try:
        box = page_geometry(job.version, job.page_number).qr_box
    except JobError:
        return None
    width = (job.right - job.left) * (box["right"] - box["left"])
    height = (job.bottom - job.top) * (box["bottom"] - box["top"])
    if width <= 0 or height <= 0:
        return None
    scale = min(MAX_SIZE[0] / width, MAX_SIZE[1] / height, 1.0)
    return max(round(width * scale), 1), max(round(height * scale), 1)


def thumbnail(job: ClusteringJob, paper_number: int) -> Path:
    """Return the PNG thumbnail of a paper's answer, making it on first use.

    Raises:
        ThumbnailUnavailable: the page is not scanned, or its scan cannot be cropped.
    """
    image_pk = (
        FixedPage.objects.filter(
            paper__paper_number=paper_number,
            page_number=job.page_number,
            version=job.version,
            image__isnull=False,
        )
        .values_list("image_id", flat=True)
        .first()
    )
    if image_pk is None:
        raise ThumbnailUnavailable(
            f"Page {job.page_number} of paper {paper_number} is not scanned."
        )
    path = thumbnails_dir(job.pk) / f"{paper_number}-{image_pk}.png"
    if path.exists():
        return path
    try:
        crop = RectangleExtractor(
            job.version, job.page_number
        ).get_cropped_scanned_img_or_none(paper_number, job.rect)
    except Exception as err:  # missing or corrupt file
        raise ThumbnailUnavailable(f"The scan could not be read: {err}") from err
    if crop is None:
        raise ThumbnailUnavailable("Too few QR codes were read on that page.")
    image = Image.fromarray(crop).convert("L")
    image.thumbnail(MAX_SIZE)
    _save_atomically(image, path)
    return path


def _save_atomically(image: Image.Image, path: Path) -> None:
    """Write then rename, so that a concurrent request never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG", optimize=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def delete_thumbnails(job_pk: int) -> None:
    """Remove a deleted job's thumbnails (only ever files this module made)."""
    shutil.rmtree(thumbnails_dir(job_pk), ignore_errors=True)
