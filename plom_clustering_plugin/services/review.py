# SPDX-License-Identifier: AGPL-3.0-or-later
"""The instructor's fixes to a job's groups: move, merge, split, rename, accept, reset.

Every edit locks the job row, checks the revision the editor last saw (so that of two
managers editing at once the second is told, not silently overwritten), applies the
change and bumps the revision.  Machine-made clusters are never deleted, so
:func:`reset` can always restore the machine's assignment.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from django.db import transaction
from django.db.models import Max
from plom_server.Base.models import HueyTaskTracker

from ..ml.clustering import cluster_embeddings
from ..models import AnswerCluster, AnswerMembership, ClusteringJob
from .errors import JobError, StaleEdit

__all__ = [
    "JobError",
    "StaleEdit",
    "accept_suggestions",
    "merge",
    "move",
    "rename",
    "reset",
    "split",
    "to_bin",
]

#: Answers that have an image and can therefore be placed in a cluster.
PLACEABLE = (
    AnswerMembership.ANSWERED,
    AnswerMembership.LOW_CONFIDENCE,
    AnswerMembership.BLANK,
)


def _lock(job_pk: int, revision: int | None) -> ClusteringJob:
    """Lock the job for an edit; refuse unknown, unfinished or stale edits."""
    job = ClusteringJob.objects.select_for_update().filter(pk=job_pk).first()
    if job is None:
        raise JobError(f"There is no clustering job {job_pk}.")
    if job.status != HueyTaskTracker.COMPLETE:
        raise JobError(f"Job {job_pk} is {job.get_status_display()}: nothing to edit.")
    if revision is not None and int(revision) != job.revision:
        raise StaleEdit()
    return job


def _bump(job: ClusteringJob) -> None:
    job.revision += 1
    job.save(update_fields=["revision", "last_update"])


def _clusters(job: ClusteringJob, pks: Iterable[int]) -> list[AnswerCluster]:
    pks = [int(pk) for pk in pks]
    found = {c.pk: c for c in AnswerCluster.objects.filter(job=job, pk__in=pks)}
    missing = [pk for pk in pks if pk not in found]
    if missing:
        raise JobError(f"Cluster {missing[0]} is not part of job {job.pk}.")
    return [found[pk] for pk in pks]


def _memberships(job: ClusteringJob, pks: Iterable[int]) -> list[AnswerMembership]:
    pks = [int(pk) for pk in pks]
    if not pks:
        raise JobError("Select at least one answer first.")
    found = list(
        AnswerMembership.objects.filter(job=job, pk__in=pks).select_related("paper")
    )
    if len(found) != len(set(pks)):
        raise JobError(f"Some of those answers are not part of job {job.pk}.")
    for m in found:
        if m.state not in PLACEABLE:
            raise JobError(
                f"Paper {m.paper.paper_number} has no readable answer"
                f" ({m.get_state_display().lower()}); it cannot join a cluster."
            )
    return found


def _new_cluster(job: ClusteringJob, name: str | None = None) -> AnswerCluster:
    number = (job.clusters.aggregate(top=Max("number"))["top"] or 0) + 1
    return AnswerCluster.objects.create(
        job=job,
        number=number,
        name=_valid_name(job, name or f"g{number:02d}"),
        made_by_machine=False,
    )


def _valid_name(job: ClusteringJob, name: str, exclude: int | None = None) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise JobError("A cluster needs a name.")
    if len(name) > 64:
        raise JobError("Cluster names are at most 64 characters.")
    taken = job.clusters.filter(name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise JobError(f"Another cluster is already called {name!r}.")
    return name


def _drop_empty_user_clusters(job: ClusteringJob) -> None:
    """User-made clusters that lost all members go; machine-made ones stay for reset."""
    AnswerCluster.objects.filter(
        job=job, made_by_machine=False, members__isnull=True
    ).delete()


def _place(members: list[AnswerMembership], cluster: AnswerCluster) -> None:
    for m in members:
        m.cluster = cluster
        m.state = AnswerMembership.ANSWERED
    AnswerMembership.objects.bulk_update(members, ["cluster", "state"])


def move(
    job_pk: int,
    membership_pks: Iterable[int],
    *,
    to_cluster: int | None = None,
    new_name: str | None = None,
    revision: int | None = None,
) -> AnswerCluster:
    """Move answers into an existing cluster, or into a new one (``to_cluster=None``).

    Returns:
        The cluster the answers are now in.
    """
    with transaction.atomic():
        job = _lock(job_pk, revision)
        members = _memberships(job, membership_pks)
        if to_cluster is None:
            target = _new_cluster(job, new_name)
        else:
            (target,) = _clusters(job, [to_cluster])
        _place(members, target)
        _drop_empty_user_clusters(job)
        _bump(job)
    return target


def merge(
    job_pk: int, cluster_pks: Iterable[int], *, revision: int | None = None
) -> AnswerCluster:
    """Merge clusters into the first one named; the others are emptied."""
    with transaction.atomic():
        job = _lock(job_pk, revision)
        clusters = _clusters(job, cluster_pks)
        if len(clusters) < 2:
            raise JobError("Choose at least two clusters to merge.")
        target, others = clusters[0], clusters[1:]
        AnswerMembership.objects.filter(job=job, cluster__in=others).update(
            cluster=target
        )
        _drop_empty_user_clusters(job)
        _bump(job)
    return target


def split(
    job_pk: int, cluster_pk: int, *, revision: int | None = None
) -> list[AnswerCluster]:
    """Re-cluster one cluster's members; the largest part keeps the cluster.

    Returns:
        The cluster followed by the new clusters made from it.
    """
    with transaction.atomic():
        job = _lock(job_pk, revision)
        (cluster,) = _clusters(job, [cluster_pk])
        members = list(
            AnswerMembership.objects.filter(job=job, cluster=cluster).order_by("pk")
        )
        usable = [m for m in members if m.embedding]
        if len(usable) < 2:
            raise JobError("A cluster needs two answers with embeddings to be split.")
        vectors = np.stack(
            [
                np.frombuffer(bytes(m.embedding), "<f2").astype(np.float32)
                for m in usable
            ]
        )
        labels = _split_labels(vectors)
        result = [cluster]
        for part in range(1, int(labels.max()) + 1):
            new = _new_cluster(job)
            _place(
                [m for m, lab in zip(usable, labels, strict=True) if lab == part], new
            )
            result.append(new)
        _bump(job)
    return result


def _split_labels(vectors: np.ndarray) -> np.ndarray:
    """Automatic k inside the cluster; when it finds one group, cut it in two."""
    labels = cluster_embeddings(vectors, same_answer_distance=0.0).labels
    if labels.max() == 0:
        from scipy.cluster.hierarchy import fcluster, linkage

        tree = linkage(vectors, method="average", metric="cosine")
        raw = fcluster(tree, t=2, criterion="maxclust")
        sizes = np.bincount(raw)
        labels = (raw != np.argmax(sizes)).astype(int)
    return labels


def rename(
    job_pk: int, cluster_pk: int, name: str, *, revision: int | None = None
) -> AnswerCluster:
    """Give a cluster a new display name (also its tag when published)."""
    with transaction.atomic():
        job = _lock(job_pk, revision)
        (cluster,) = _clusters(job, [cluster_pk])
        cluster.name = _valid_name(job, name, exclude=cluster.pk)
        cluster.save(update_fields=["name"])
        _bump(job)
    return cluster


def accept_suggestions(
    job_pk: int, membership_pks: Iterable[int], *, revision: int | None = None
) -> int:
    """Put review-bin answers into the cluster the machine suggested for them.

    Returns:
        How many answers were placed.
    """
    with transaction.atomic():
        job = _lock(job_pk, revision)
        members = [
            m
            for m in _memberships(job, membership_pks)
            if m.state == AnswerMembership.LOW_CONFIDENCE and m.suggested_cluster_id
        ]
        if not members:
            raise JobError("None of those answers has a suggestion to accept.")
        for m in members:
            m.cluster_id = m.suggested_cluster_id
            m.state = AnswerMembership.ANSWERED
        AnswerMembership.objects.bulk_update(members, ["cluster", "state"])
        _bump(job)
    return len(members)


def to_bin(
    job_pk: int, membership_pks: Iterable[int], *, revision: int | None = None
) -> int:
    """Take answers out of their clusters into the review bin."""
    with transaction.atomic():
        job = _lock(job_pk, revision)
        members = _memberships(job, membership_pks)
        for m in members:
            m.suggested_cluster_id = m.cluster_id or m.suggested_cluster_id
            m.cluster = None
            m.state = AnswerMembership.LOW_CONFIDENCE
        AnswerMembership.objects.bulk_update(
            members, ["cluster", "state", "suggested_cluster"]
        )
        _drop_empty_user_clusters(job)
        _bump(job)
    return len(members)


def reset(job_pk: int, *, revision: int | None = None) -> None:
    """Restore the machine's assignment and names; user-made clusters go."""
    with transaction.atomic():
        job = _lock(job_pk, revision)
        members = list(AnswerMembership.objects.filter(job=job))
        for m in members:
            m.cluster_id = m.machine_cluster_id
            m.state = m.machine_state
        AnswerMembership.objects.bulk_update(members, ["cluster", "state"])
        AnswerCluster.objects.filter(job=job, made_by_machine=False).delete()
        for cluster in job.clusters.all():
            if cluster.name != cluster.machine_name:
                cluster.name = cluster.machine_name
                cluster.save(update_fields=["name"])
        _bump(job)
