# SPDX-License-Identifier: AGPL-3.0-or-later
"""Start, run, cancel and delete clustering jobs.

A job either completes, with all its clusters and memberships written in the same
transaction that marks it COMPLETE, or ends in ERROR with a message; there are no
half-written results.  A new job never touches an older job's results.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from plom_server.Base.models import HueyTaskTracker
from plom_server.Papers.services import SpecificationService

from ..conf import clustering_settings
from ..ml.pipeline import ANSWERED, LOW_CONFIDENCE, OTHER, Pipeline, PipelineResult
from ..models import AnswerCluster, AnswerMembership, ClusteringJob
from .crops import AnswerProblem, CropSource
from .embedding import check_weights_available, embedder_for
from .errors import JobError

log = logging.getLogger(__name__)

#: A job that reports no progress for this long has lost its worker.
STALE_AFTER = timedelta(minutes=15)
#: Progress is written at most this often (seconds), to spare the database.
PROGRESS_INTERVAL = 0.5
ACTIVE = (HueyTaskTracker.STARTING, HueyTaskTracker.QUEUED, HueyTaskTracker.RUNNING)


class JobCancelled(Exception):
    """Raised inside a running job when a user asked to cancel it."""


def validate_request(
    question_index: int, version: int, page_number: int | None, kind: str
) -> int:
    """Check question, version, page and kind against the spec; return the page.

    Raises:
        JobError: with a message naming what is wrong.
    """
    if not SpecificationService.is_there_a_spec():
        raise JobError("There is no exam specification yet: nothing to cluster.")
    pages = SpecificationService.get_question_pages()
    if question_index not in pages:
        raise JobError(
            f"There is no question {question_index}; questions are"
            f" {', '.join(map(str, sorted(pages)))}."
        )
    versions = SpecificationService.get_list_of_versions()
    if version not in versions:
        raise JobError(
            f"There is no version {version}; versions are"
            f" {', '.join(map(str, versions))}."
        )
    if page_number is None:
        page_number = pages[question_index][0]
    elif page_number not in pages[question_index]:
        raise JobError(
            f"Question {question_index} is on page(s)"
            f" {', '.join(map(str, pages[question_index]))}, not page {page_number}."
        )
    if kind not in dict(ClusteringJob.KIND_CHOICES):
        raise JobError(f"Unknown kind {kind!r}: use 'mcq' (letters) or 'hme' (math).")
    check_weights_available(kind)
    return page_number


def start_job(
    *,
    question_index: int,
    version: int,
    rect: dict[str, float],
    kind: str,
    page_number: int | None = None,
    user: User | None = None,
    parameters: dict[str, Any] | None = None,
) -> ClusteringJob:
    """Check the request, create the job and enqueue its Huey task.

    Args:
        question_index: which question.
        version: which version of it.
        rect: the answer rectangle, Plom's fractional ``left/top/right/bottom``.
        kind: ``mcq`` (a letter A-F) or ``hme`` (a math expression).
        page_number: the page of the question holding the box (default: its first).
        user: who asked.
        parameters: extra settings recorded on the job.

    Returns:
        The job (already COMPLETE when Huey runs tasks immediately).

    Raises:
        JobError: the request cannot be run, with the reason.
    """
    page_number = validate_request(question_index, version, page_number, kind)
    try:
        rect = {k: float(rect[k]) for k in ("left", "top", "right", "bottom")}
        source = CropSource(question_index, version, page_number, rect)
    except (KeyError, TypeError, ValueError) as err:
        raise JobError(f"Cannot crop that region: {err}") from err
    if source.paper_count() == 0:
        raise JobError(
            f"No paper has question {question_index} version {version} on page"
            f" {page_number}."
        )
    from ..tasks import huey_cluster_question

    with transaction.atomic(durable=True):
        job = ClusteringJob.objects.create(
            question_index=question_index,
            version=version,
            page_number=page_number,
            kind=kind,
            created_by=user,
            parameters=parameters or {},
            status=HueyTaskTracker.STARTING,
            stage="queued",
            **rect,
        )
    result = huey_cluster_question(job.pk)
    HueyTaskTracker.transition_to_queued_or_running(job.pk, result.id)
    job.refresh_from_db()
    return job


@contextlib.contextmanager
def bounded_threads(count: int) -> Iterator[None]:
    """Keep OpenCV and BLAS/OpenMP pools to ``count`` threads (Huey runs many workers)."""
    import cv2
    from threadpoolctl import threadpool_limits

    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        cv2.setNumThreads(previous)


def _report(job_pk: int, stage: str, done: int, total: int) -> None:
    """Write progress (also the heartbeat that tells a live job from a dead one)."""
    ClusteringJob.objects.filter(pk=job_pk).update(
        stage=stage, done=done, total=total, last_update=timezone.now()
    )


def _check_cancel(job_pk: int) -> None:
    if ClusteringJob.objects.filter(pk=job_pk, cancel_requested=True).exists():
        raise JobCancelled()


def run_job(job_pk: int, huey_id: Any) -> None:
    """The body of the Huey task: crop, preprocess, embed, cluster, store.

    Never raises: failures end the job in ERROR with a readable message.
    """
    job = ClusteringJob.objects.filter(pk=job_pk).first()
    if job is None or job.status not in (
        HueyTaskTracker.STARTING,
        HueyTaskTracker.QUEUED,
    ):
        log.info("clustering job %s is gone or no longer waiting; skipping", job_pk)
        return
    HueyTaskTracker.transition_to_running(job_pk, huey_id)
    try:
        with bounded_threads(clustering_settings.ONNX_THREADS):
            result, papers = _compute(job)
        _store(job_pk, result, papers)
    except JobCancelled:
        HueyTaskTracker.transition_chore_to_error(job_pk, "Cancelled by a user.")
    except Exception as err:
        log.exception("clustering job %s failed", job_pk)
        HueyTaskTracker.transition_chore_to_error(
            job_pk, f"The job failed: {type(err).__name__}: {err}"
        )


def _compute(job: ClusteringJob) -> tuple[PipelineResult, dict[int, Any]]:
    """Run the ML pipeline over every paper; return its result and the papers by pk."""
    source = CropSource(job.question_index, job.version, job.page_number, job.rect)
    embedder = embedder_for(
        job.kind, progress=lambda done, size: _report(job.pk, "downloading", done, size)
    )
    ClusteringJob.objects.filter(pk=job.pk).update(
        model_name=embedder.name,
        model_version=embedder.version,
        model_sha256=embedder.sha256 or "",
    )
    total = source.paper_count()
    last = [0.0]

    def progress(stage: str, done: int, count: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL or done == count:
            last[0] = now
            _report(job.pk, stage, done, count)
            _check_cancel(job.pk)

    pipeline = Pipeline(
        embedder,
        reference=source.reference_crop(),
        # A model calibrated its own unsure threshold; the setting covers the others.
        review_confidence=getattr(
            embedder, "review_confidence", clustering_settings.REVIEW_CONFIDENCE
        ),
        batch_size=clustering_settings.BATCH_SIZE,
        progress=progress,
    )
    papers: dict[int, Any] = {}
    progress("cropping", 0, total)
    for done, (paper, crop) in enumerate(source.crops(), start=1):
        papers[paper.pk] = paper
        if isinstance(crop, AnswerProblem):
            pipeline.add_problem(paper.pk, crop.state, crop.message)
        else:
            pipeline.add(paper.pk, crop)
        progress("cropping", done, total)
    return pipeline.finish(), papers


def _store(job_pk: int, result: PipelineResult, papers: dict[int, Any]) -> None:
    """Write clusters and memberships and mark the job COMPLETE, all in one transaction."""
    with transaction.atomic():
        job = ClusteringJob.objects.select_for_update().get(pk=job_pk)
        if job.cancel_requested:
            raise JobCancelled()
        if job.status != HueyTaskTracker.RUNNING:
            raise RuntimeError(f"job is {job.get_status_display()}, not Running")
        clusters = AnswerCluster.objects.bulk_create(
            AnswerCluster(
                job=job,
                number=group.number,
                name=group.name,
                machine_name=group.name,
                kind=(
                    AnswerCluster.OTHER if group.kind == OTHER else AnswerCluster.GROUP
                ),
            )
            for group in result.groups
        )
        rows = []
        for answer in result.answers:
            cluster = clusters[answer.group] if answer.group is not None else None
            placed = cluster if answer.state == ANSWERED else None
            rows.append(
                AnswerMembership(
                    job=job,
                    paper=papers[answer.key],
                    cluster=placed,
                    machine_cluster=placed,
                    suggested_cluster=(
                        cluster if answer.state == LOW_CONFIDENCE else None
                    ),
                    state=answer.state,
                    machine_state=answer.state,
                    confidence=answer.confidence,
                    distance=answer.distance,
                    message=answer.message,
                    embedding=(
                        None
                        if answer.vector is None
                        else answer.vector.astype("<f2").tobytes()
                    ),
                )
            )
        AnswerMembership.objects.bulk_create(rows, batch_size=500)
        job.status = HueyTaskTracker.COMPLETE
        job.huey_id = None
        job.stage = "done"
        job.done = job.total = len(result.answers)
        job.finished = timezone.now()
        job.message = summarise(result)
        job.save()


def summarise(result: PipelineResult) -> str:
    """One line for the job list: groups and bins."""
    counts: dict[str, int] = {}
    for answer in result.answers:
        counts[answer.state] = counts.get(answer.state, 0) + 1
    groups = sum(1 for g in result.groups if g.kind != OTHER)
    parts = [f"{groups} group{'s' if groups != 1 else ''}"]
    labels = {
        LOW_CONFIDENCE: "to review",
        "blank": "blank",
        "unreadable": "unreadable",
        "not_scanned": "not scanned",
    }
    parts += [f"{counts[s]} {label}" for s, label in labels.items() if counts.get(s)]
    return ", ".join(parts)


def is_stale(job: ClusteringJob) -> bool:
    """True for an active job whose worker stopped reporting (killed, server restart)."""
    return job.status in ACTIVE and timezone.now() - job.last_update > STALE_AFTER


def cancel_job(job: ClusteringJob) -> None:
    """Cancel a queued or running job; a running one stops at its next progress report.

    Raises:
        JobError: the job is not active.
    """
    job.refresh_from_db()
    if job.status not in ACTIVE:
        raise JobError(
            f"Job {job.pk} is {job.get_status_display()}: nothing to cancel."
        )
    if job.status == HueyTaskTracker.RUNNING and not is_stale(job):
        ClusteringJob.objects.filter(pk=job.pk).update(cancel_requested=True)
        return
    _revoke(job)
    reason = (
        "Stopped: its worker made no progress since"
        f" {job.last_update:%Y-%m-%d %H:%M} UTC."
        if is_stale(job)
        else "Cancelled by a user before it started."
    )
    ClusteringJob.objects.filter(pk=job.pk).update(
        cancel_requested=True, status=HueyTaskTracker.ERROR, message=reason
    )


def _revoke(job: ClusteringJob) -> None:
    """Tell Huey not to start the task if it is still queued."""
    if job.huey_id is None:
        return
    from django_huey import get_queue

    try:
        get_queue(clustering_settings.QUEUE).revoke_by_id(str(job.huey_id))
    except Exception as err:  # the queue may be unreachable; the flag still stops it
        log.warning("could not revoke Huey task of job %s: %s", job.pk, err)


def delete_job(job: ClusteringJob) -> None:
    """Delete a job's clusters and memberships (never scans or marks); unpublish first.

    Raises:
        JobError: the job is still running (cancel it first).
    """
    from .publish import unpublish

    job.refresh_from_db()
    if job.status in ACTIVE and not is_stale(job):
        raise JobError(
            f"Job {job.pk} is {job.get_status_display()}: cancel it before deleting it."
        )
    from .thumbnails import delete_thumbnails

    if job.is_published:
        unpublish(job)
    pk = job.pk
    job.delete()
    transaction.on_commit(lambda: delete_thumbnails(pk))
