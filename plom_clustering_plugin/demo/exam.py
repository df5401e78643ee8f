# SPDX-License-Identifier: AGPL-3.0-or-later
"""Build a Plom exam whose papers are really printed, written on, scanned and pushed.

Everything runs in-process through Plom's own services, offline and without LaTeX: the
spec and the 6-page test source ship in Plom's wheel; each paper's PDF gets QR codes from
Plom, the chosen "handwriting" is pasted into its answer boxes, the pages are rasterised
like a scanner would (JPEG, slight tilt), uploaded as one bundle, QR-read and pushed.
Huey must run tasks immediately (test settings do; :func:`huey_immediately` otherwise).
"""

from __future__ import annotations

import contextlib
import io
import random
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pymupdf
from django.contrib.auth.models import Group, User
from django.core.files import File
from PIL import Image

#: Papers per uploaded bundle (see :func:`_scan_bundle`).
PAPERS_PER_BUNDLE = 100
#: Printed answer boxes in the test source, in PDF points (x0, y0, x1, y1).
ANSWER_BOXES: dict[int, tuple[int, tuple[float, float, float, float]]] = {
    # question index: (page number, box (a) of that question)
    1: (3, (330.9, 110.1, 511.7, 152.9)),
    2: (4, (330.9, 138.9, 511.7, 181.8)),
}
#: Where the handwriting goes inside a box: right of the printed "Answer:" label.
WRITING_INSET = (42.0, 3.0, -4.0, -2.0)
#: The exam's public code (six digits, in every QR code); Plom would draw one at random.
DEMO_PUBLIC_CODE = "271828"
#: Reference images are rendered at 200 dpi.
REFERENCE_DPI = 200


@dataclass
class ScannedExam:
    """What :func:`build_scanned_exam` made."""

    papers: list[int]
    manager: User
    scanner: User
    bundle_pks: list[int]
    answer_rects: dict[int, dict[str, float]] = field(default_factory=dict)
    answer_pages: dict[int, int] = field(default_factory=dict)


def test_source_pdf() -> Path:
    """Plom's 6-page test source, from its installed wheel."""
    package = resources.files("plom_server.Preparation") / "useful_files_for_testing"
    return Path(str(package / "test_version1.pdf"))


def box_to_rect(page: int, box: tuple[float, float, float, float]) -> dict[str, float]:
    """Convert a PDF-point box to Plom's QR-relative fractions for that page."""
    from plom_server.Papers.models import ReferenceImage
    from plom_server.Rectangles.services import get_reference_rectangle_for_page

    ref = get_reference_rectangle_for_page(page, version=1)
    scale = REFERENCE_DPI / 72.0
    assert ReferenceImage.objects.filter(page_number=page).exists()
    width = ref["right"] - ref["left"]
    height = ref["bottom"] - ref["top"]
    x0, y0, x1, y1 = box
    return {
        "left": (x0 * scale - ref["left"]) / width,
        "top": (y0 * scale - ref["top"]) / height,
        "right": (x1 * scale - ref["left"]) / width,
        "bottom": (y1 * scale - ref["top"]) / height,
    }


@contextlib.contextmanager
def huey_immediately() -> Iterator[None]:
    """Run Plom's Huey queues in-process for the duration (for the demo's set-up)."""
    from django_huey import get_queue

    queues = [get_queue(name) for name in ("chores", "parentchores")]
    saved = [q.immediate for q in queues]
    try:
        for q in queues:
            q.immediate = True
        yield
    finally:
        for q, was in zip(queues, saved, strict=True):
            q.immediate = was


def _user(username: str, group: str, password: str | None = None) -> User:
    user, created = User.objects.get_or_create(username=username)
    if created or password:
        user.set_password(password or username)
        user.save()
    user.groups.add(Group.objects.get(name=group))
    return user


def _prepare_exam(num_papers: int) -> None:
    """Spec, source (with reference images), papers: Plom's preparation steps."""
    from plom_server.Base.services import Settings
    from plom_server.Papers.services import PaperCreatorService, SpecificationService
    from plom_server.Preparation.services import PapersPrinted, SourceService
    from plom_server.Preparation.services.pqv_mapping import PQVMappingService

    spec = (resources.files("plom_clustering_plugin.demo") / "spec.toml").read_text()
    SpecificationService.install_spec_from_toml_string(spec)
    # Plom draws a random public code into every QR code; a fixed one makes the scans,
    # and so the groups, the same on every run with the same seed.
    if Settings.get_public_code() is None:
        Settings.set_public_code(DEMO_PUBLIC_CODE)
    with test_source_pdf().open("rb") as fh:
        SourceService.take_source_from_upload(1, File(fh, name="test_version1.pdf"))
    qvmap = PQVMappingService().make_version_map(num_papers)
    PaperCreatorService.add_all_papers_in_qv_map(qvmap, background=False)
    PapersPrinted.set_papers_printed(True, ignore_dependencies=True)


def _paper_pdf(paper_number: int, workdir: Path) -> Path:
    from plom.create import make_PDF
    from plom_server.Base.services import Settings
    from plom_server.Papers.services import PaperInfoService, SpecificationService

    spec = SpecificationService.get_the_spec()
    qv_row = PaperInfoService.get_pqv_map_dict()[paper_number]
    return make_PDF(
        spec,
        paper_number,
        question_versions=qv_row,
        public_code=Settings.get_or_create_new_public_code(),
        where=workdir,
        source_versions={1: test_source_pdf()},
    )


def _write_answers(
    pdf_path: Path, answers: Mapping[int, bytes | None]
) -> pymupdf.Document:
    """Paste each question's handwriting PNG into its answer box."""
    doc = pymupdf.open(pdf_path)
    for question, png in answers.items():
        if png is None:
            continue  # a blank box
        page, (x0, y0, x1, y1) = ANSWER_BOXES[question]
        dx0, dy0, dx1, dy1 = WRITING_INSET
        target = pymupdf.Rect(x0 + dx0, y0 + dy0, x1 + dx1, y1 + dy1)
        doc[page - 1].insert_image(
            target, stream=png, keep_proportion=True, overlay=True
        )
    return doc


def _scan_page(page: pymupdf.Page, dpi: int, tilt: float) -> bytes:
    """Rasterise a page like a scanner: greyscale JPEG, slightly rotated."""
    pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
    img = Image.frombytes("L", (pix.width, pix.height), pix.samples)
    if tilt:
        img = img.rotate(tilt, resample=Image.BILINEAR, expand=False, fillcolor=255)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _scan_bundle(
    papers: list[int],
    answers: Mapping[int, Mapping[int, bytes | None]],
    pages: list[int],
    dpi: int,
    max_tilt: float,
    rng: random.Random,
    scanner: User,
    index: int,
) -> int:
    """Write, scan, upload and push the answer pages of ``papers`` as one bundle."""
    from plom_server.Scan.services import ScanService

    with tempfile.TemporaryDirectory(prefix="plom-clustering-exam-") as tmp:
        workdir = Path(tmp)
        bundle = pymupdf.open()
        for paper in papers:
            per_question = {q: answers.get(q, {}).get(paper) for q in ANSWER_BOXES}
            doc = _write_answers(_paper_pdf(paper, workdir), per_question)
            for page in pages:
                jpeg = _scan_page(doc[page - 1], dpi, rng.uniform(-max_tilt, max_tilt))
                rect = doc[page - 1].rect
                out_page = bundle.new_page(width=rect.width, height=rect.height)
                out_page.insert_image(out_page.rect, stream=jpeg)
            doc.close()
        name = f"scanned_bundle_{index:05d}.pdf"
        bundle_path = workdir / name
        bundle.save(bundle_path)
        bundle.close()
        with bundle_path.open("rb") as fh:
            info = ScanService.upload_bundle(
                File(fh, name=name), scanner, read_after=True
            )
    bundle_pk = info["bundle_id"]
    if not ScanService.is_bundle_perfect(bundle_pk):
        raise RuntimeError(
            f"the scanned bundle {name} is not perfect (unread QR codes or unknown pages)"
        )
    # Plom pushes a bundle in one query per check; on SQLite a 1,000-page bundle
    # exceeds its expression depth, hence bundles of PAPERS_PER_BUNDLE papers.
    ScanService.push_bundle_to_server(bundle_pk, scanner)
    return bundle_pk


def build_scanned_exam(
    answers: Mapping[int, Mapping[int, bytes | None]],
    *,
    num_papers: int,
    scanned_papers: list[int] | None = None,
    dpi: int = 150,
    max_tilt: float = 0.8,
    seed: int = 0,
    manager_password: str | None = None,
    papers_per_bundle: int = PAPERS_PER_BUNDLE,
) -> ScannedExam:
    """Make a Plom exam of ``num_papers`` papers and scan the answer pages.

    Args:
        answers: ``{question_index: {paper_number: PNG bytes or None (blank)}}`` for
            questions 1 and/or 2; a paper missing from a question's dict is blank.
        num_papers: how many papers to create.
        scanned_papers: which papers to scan (default all); the others stay unscanned.
        dpi: scan resolution; below ~100 some QR codes stop reading.
        max_tilt: the largest rotation of a scanned page, in degrees.
        seed: makes the tilts reproducible.
        manager_password: password of the ``manager`` user (default: its name).
        papers_per_bundle: papers scanned into one bundle; larger scans are uploaded
            as several bundles, as a scanning room does.

    Returns:
        The papers, users, bundles and each question's answer rectangle.
    """
    from plom_server.Authentication.services import AuthService

    AuthService.create_groups()
    manager = _user("manager", "manager", manager_password)
    scanner = _user("scanner", "scanner")
    _prepare_exam(num_papers)
    papers = list(range(1, num_papers + 1))
    to_scan = papers if scanned_papers is None else sorted(scanned_papers)
    pages = sorted({ANSWER_BOXES[q][0] for q in ANSWER_BOXES})
    rng = random.Random(seed)
    bundle_pks = []
    for start in range(0, len(to_scan), max(1, papers_per_bundle)):
        chunk = to_scan[start : start + max(1, papers_per_bundle)]
        bundle_pks.append(
            _scan_bundle(chunk, answers, pages, dpi, max_tilt, rng, scanner, start)
        )
    exam = ScannedExam(papers, manager, scanner, bundle_pks)
    for question, (page, box) in ANSWER_BOXES.items():
        exam.answer_pages[question] = page
        exam.answer_rects[question] = box_to_rect(page, box)
    return exam
